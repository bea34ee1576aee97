"""The tidy training table: raw copies of published results, their parsers, the schema and the build.

`python -m training_data.build` (or `xlt data build`) writes observations.csv, exclusions.csv, peer_langrank.csv and
README.md from raw/. See README.md for the columns and conventions.
"""
