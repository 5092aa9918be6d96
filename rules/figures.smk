# Figures and tables read small tables and take seconds: on a cluster they run
# on the submit host instead of waiting in the queue.
localrules:
    figure,
    table5,
    cnn_table,


# Every figure of the paper is a target: results/figures/<name>.pdf and .png.
rule figure:
    input:
        unpack(get_figure_input),
    output:
        pdf="results/figures/{figure}.pdf",
        png="results/figures/{figure}.png",
    log:
        "logs/figures/{figure}.log",
    wildcard_constraints:
        figure="|".join(ARTIFACTS),
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        caption=get_figure_caption,
        options=get_figure_options,
        code=code_hash("figure.py"),
    script:
        "../scripts/figure.py"


rule table5:
    input:
        "results/tables/random_labels/history.csv",
    output:
        csv="results/tables/table5.csv",
        md="results/tables/table5.md",
    log:
        "logs/tables/table5.log",
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        epochs=config["table5_epochs"],
        code=code_hash("table5.py"),
    script:
        "../scripts/table5.py"


rule cnn_table:
    input:
        lambda wc: f"results/tables/{CNN_TABLES[wc.table]}/metrics.csv",
    output:
        csv="results/tables/{table}.csv",
        md="results/tables/{table}.md",
        tex="results/tables/{table}.tex",
    log:
        "logs/tables/{table}.log",
    wildcard_constraints:
        table="|".join(CNN_TABLES),
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=5,
    params:
        caption=get_table_caption,
        code=code_hash("cnn_table.py"),
    script:
        "../scripts/cnn_table.py"
