rule fig2a:
    input:
        "results/tables/width/metrics.csv",
    output:
        pdf="results/figures/fig2a.pdf",
        png="results/figures/fig2a.png",
    log:
        "logs/figures/fig2a.log",
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        caption=get_caption("width"),
        epoch=get_last_code_epoch("width"),
        code=FIGURES_CODE,
    script:
        "../scripts/fig2a.py"


rule fig2b:
    input:
        "results/tables/width/metrics.csv",
    output:
        pdf="results/figures/fig2b.pdf",
        png="results/figures/fig2b.png",
    log:
        "logs/figures/fig2b.log",
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        caption=get_caption("width"),
        epoch=get_last_code_epoch("width"),
        code=FIGURES_CODE,
    script:
        "../scripts/fig2b.py"
