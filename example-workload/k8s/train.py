"""The training script of torchrun-job.yaml, shipped in a ConfigMap (kustomization.yaml's
configMapGenerator) and run as `torchrun /opt/train/train.py` with the env that kubepeers wrote
(PET_NNODES, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT, PET_NPROC_PER_NODE).

It stands for your training loop: every process joins one process group (env://, as torchrun sets it
up), all-reduces its rank and checks the sum, so a wrong world size or rank fails the pod. It uses NCCL
on GPUs when the container has them, else gloo on the CPU, as the manifest ships.
"""

import os
import sys

import torch
import torch.distributed as dist


def main() -> int:
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        backend = "nccl"
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        backend = "gloo"
        device = torch.device("cpu")
    dist.init_process_group(backend=backend, init_method="env://")
    try:
        total = torch.tensor([float(rank)], device=device)
        dist.all_reduce(total)
        expected = world_size * (world_size - 1) / 2
        print(
            f"rank {rank} of {world_size} (local rank {local_rank}, {backend}, "
            f"master {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}): "
            f"all_reduce of the ranks = {total.item():g}, expected {expected:g}",
            flush=True,
        )
        return 0 if total.item() == expected else 1
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
