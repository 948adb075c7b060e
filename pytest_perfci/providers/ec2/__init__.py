"""The EC2 provider: catalogue, AMIs, per-run access, launch, self-destruct, teardown."""

from pytest_perfci.providers.ec2.ami import AmiError, AmiMismatch
from pytest_perfci.providers.ec2.catalog import Catalog, InstanceTypeInfo, UnknownInstanceType
from pytest_perfci.providers.ec2.launch import CapacityUnavailable, LaunchError, QuotaExceeded
from pytest_perfci.providers.ec2.provider import EC2Provider, EC2SetupError, InstanceRecord, NoCredentials
from pytest_perfci.providers.ec2.teardown import TeardownError, TeardownReport, teardown

__all__ = [
    "AmiError", "AmiMismatch", "CapacityUnavailable", "Catalog", "EC2Provider", "EC2SetupError",
    "InstanceRecord", "InstanceTypeInfo", "LaunchError", "NoCredentials", "QuotaExceeded",
    "TeardownError", "TeardownReport", "UnknownInstanceType", "teardown",
]
