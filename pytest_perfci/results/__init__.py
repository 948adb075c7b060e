"""Result model, NDJSON/S3 export, baselines and history regressions, capability matrix.

See results.model (Sample, ResultRecord, Infrastructure), results.baseline, results.history,
results.matrix, results.s3, results.scrub, and results.plugin (the pytest wiring).
"""
