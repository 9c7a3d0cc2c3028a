"""Great Expectations suites that guard the consent and anonymity rules.

Suites are plain functions; :mod:`expectations.runner` validates a bounded
dataframe against one in an ephemeral context and keeps only counts: the
values GX would list as unexpected never leave the runner.
"""
