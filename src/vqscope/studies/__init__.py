"""Rating studies: people in the loop.

The loop a platform runs, and the module that holds each step:

    choose what to rate      select.py      stratified by model score + k-centre in feature space
    run the study            design.py      methods, per-rater task lists (training, repeats, gold)
                             store.py       studies, raters, tasks and ratings in the job store
                             (service/studies.py and the rating page serve it to raters)
    ratings -> MOS           mos.py         BT.500 and P.913 screening (Netflix's sureal), MOS + intervals
    plan a study             simulate.py    simulated raters: how many raters for what precision
    grades set by people     thresholds.py  ordinal regression of raters' categories on the model's score
    models that learn        fit.py         heads on frozen features, cross-validated against the shipped model
    in and out               exchange.py    dataset CSV / FineVD JSON export, ratings CSV import

`ratings.py` holds the plain records (Rating, Comparison, Item) that all of them share.
"""
