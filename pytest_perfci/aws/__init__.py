"""boto3 plumbing shared by the EC2 and kops providers and the reaper."""
