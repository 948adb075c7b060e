"""Pure models: data and the parsers of raw text that hosts, providers, checks and the CLI share.

Why a package of its own: these models used to live in I/O packages (Facts in hosts/, the instance
type query grammar in providers/ec2/), so a verdict in checks/ had to import hosts/, and code that
only parses text dragged in paramiko or the EC2 package, or hid the import inside a function. Here
nothing imports boto3, botocore, paramiko or pytest (tests/test_pure_models.py checks it in a fresh
interpreter): only the standard library, pydantic and other modules of this package. Every other
layer may import models; models imports no other layer.
"""
