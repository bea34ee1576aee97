"""Turn (model, task, training mix, target) queries into numbers: languages, registry, URIEL typology, featurizer.

Lowest layer of xlt: it knows nothing of predictors or HTTP.
"""
