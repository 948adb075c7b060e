"""Which image each instance type boots, checked before anything is created.

Defaults come from SSM public parameters, Amazon Linux 2023 per architecture; a type with NVIDIA GPUs
(DescribeInstanceTypes GpuInfo) boots the AWS Deep Learning Base OSS Nvidia Driver GPU AMI (Amazon Linux
2023) of its architecture instead, which carries the driver, nvidia-smi and CUDA the GPU suite needs.
Its parameter names follow AWS's documented scheme
/aws/service/deeplearning/ami/$architecture/$ami_type/latest/ami-id, ami_type being the DLAMI's name
without "deep", "learning" and "ami" ("Finding the ID of a DLAMI",
https://docs.aws.amazon.com/dlami/latest/devguide/find-dlami-id.html); the release notes of
"Deep Learning Base OSS Nvidia Driver GPU AMI (Amazon Linux 2023)" (x86_64: G4dn, G5, G6, Gr6, G6e,
P4d, P4de, P5, P5e, P5en, P6) and its ARM64 sibling (G5g) name the types each supports. That image's
root snapshot is larger than the default root volume (75 GiB and more), so the root volume is never
made smaller than the image's own snapshot (`Image.min_root_gb`). The moto server used
in tests serves both parameters named below (its SSM backend ships the real
/aws/service/ami-amazon-linux-latest/* set, and the images they point at exist in its
DescribeImages with the right Architecture), so tests exercise the same path as production.

`--ami ami-...` overrides for every type, `--ami arm64=ami-...` for one architecture. Every chosen
image is looked up with DescribeImages: a missing image or one whose Architecture differs from the
type's is an error before any create call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from pytest_perfci.models.instance_types import InstanceTypeInfo

if TYPE_CHECKING:
    from types_boto3_ec2 import EC2Client
    from types_boto3_ec2.type_defs import ImageTypeDef
    from types_boto3_ssm import SSMClient

SSM_DEFAULTS = {
    "x86_64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
    "arm64": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
}
# Types with NVIDIA GPUs (see the module doc for the source of these names). moto does not serve them.
SSM_GPU_DEFAULTS = {
    "x86_64": "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id",
    "arm64": "/aws/service/deeplearning/ami/arm64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id",
}


def wants_gpu_image(info: InstanceTypeInfo) -> bool:
    """NVIDIA GPUs need the driver image; other accelerators (AMD Radeon of g4ad) keep the default."""
    return "nvidia" in info.gpu_makers

# Image-name prefixes -> the login user the image's cloud-init creates.
_USERS = (
    ("ubuntu/", "ubuntu"),
    ("ubuntu-", "ubuntu"),
    ("debian-", "admin"),
    ("al20", "ec2-user"),
    ("amzn", "ec2-user"),
    ("rhel", "ec2-user"),
    ("suse", "ec2-user"),
    ("fedora", "fedora"),
    ("centos", "centos"),
)


class AmiError(ValueError):
    """The image setting cannot work; str() is one line."""


class AmiMismatch(AmiError):
    """The image's architecture is not the instance type's."""


def login_user(image_name: str) -> str:
    """Default SSH user for an image family (AL2023 -> ec2-user, Ubuntu -> ubuntu); ec2-user if unknown."""
    name = image_name.lower()
    for prefix, user in _USERS:
        if name.startswith(prefix) or f"/{prefix}" in name:
            return user
    return "ec2-user"


@dataclass(frozen=True)
class Image:
    ami: str
    arch: str
    name: str
    root_device: str
    user: str
    source: str  # "--ami", "--ami arm64=", or the SSM parameter name
    min_root_gb: int = 0  # the root snapshot's size (DescribeImages): the root volume may not be smaller


def parse_overrides(values: tuple[str, ...] | list[str]) -> dict[str | None, str]:
    """("ami-1", "arm64=ami-2") -> {None: "ami-1", "arm64": "ami-2"}."""
    out: dict[str | None, str] = {}
    for value in values:
        arch, sep, ami = value.partition("=")
        if sep:
            out[arch] = ami
        else:
            out[None] = value
    return out


class AmiResolver:
    """Picks and verifies the image for each instance type (cached per image and per arch)."""

    def __init__(self, ec2: EC2Client, ssm: SSMClient, overrides: tuple[str, ...] = (), ssh_user: str | None = None) -> None:
        self.ec2 = ec2
        self.ssm = ssm
        self.overrides = parse_overrides(overrides)
        self.ssh_user = ssh_user
        self._images: dict[str, ImageTypeDef] = {}
        self._lock = threading.Lock()

    def _source(self, arch: str, gpu: bool = False) -> tuple[str, str]:
        """(ami id, where it came from) for an architecture (and whether the type has NVIDIA GPUs)."""
        if arch in self.overrides:
            return self.overrides[arch], f"--ami {arch}="
        if None in self.overrides:
            return self.overrides[None], "--ami"
        param = (SSM_GPU_DEFAULTS if gpu else SSM_DEFAULTS)[arch]
        try:
            value = self.ssm.get_parameter(Name=param)["Parameter"]["Value"]
        except ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            what = f"{arch} NVIDIA GPU" if gpu else arch
            raise AmiError(
                f"cannot read the default {what} AMI from SSM parameter {param} ({code}); pass --ami {arch}=ami-..."
            ) from None
        return value, param

    def _describe(self, ami: str, source: str) -> ImageTypeDef:
        with self._lock:
            if ami not in self._images:
                try:
                    images = self.ec2.describe_images(ImageIds=[ami])["Images"]
                except ClientError as e:
                    code = e.response.get("Error", {}).get("Code", "")
                    if code not in ("InvalidAMIID.NotFound", "InvalidAMIID.Unavailable", "InvalidAMIID.Malformed"):
                        raise
                    images = []
                if not images:
                    raise AmiError(f"AMI {ami} (from {source}) does not exist or is not visible in this region")
                self._images[ami] = images[0]
            return self._images[ami]

    def for_type(self, info: InstanceTypeInfo) -> Image:
        ami, source = self._source(info.arch, gpu=wants_gpu_image(info))
        image = self._describe(ami, source)
        arch = image.get("Architecture", "")
        if arch != info.arch:
            raise AmiMismatch(
                f"AMI {ami} (from {source}) is {arch or 'of unknown architecture'} but {info.name} is "
                f"{info.arch}; pass --ami {info.arch}=ami-... with an {info.arch} image"
            )
        name = image.get("Name", "")
        root = image.get("RootDeviceName") or "/dev/xvda"
        snapshot_gb = max((int(m.get("Ebs", {}).get("VolumeSize") or 0) for m in image.get("BlockDeviceMappings", [])
                           if m.get("DeviceName") == root), default=0)
        return Image(
            ami=ami,
            arch=arch,
            name=name,
            root_device=root,
            user=self.ssh_user or login_user(name),
            source=source,
            min_root_gb=snapshot_gb,
        )
