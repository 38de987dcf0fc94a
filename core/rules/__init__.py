"""Pure rules: functions of plain values, no session, no SQL. The services read rows, take the
locks and ask these modules; Slack's buttons and the Action's await-gate ask the same functions.

    metrics.py   metric rules, verdicts, baselines, regressions, trends
    gates.py     who may decide a gate now (status, stage, policy, self-approval)
"""
