#!/bin/bash
# Open MPI 4.1.4 and MPICH 4.0.2 (hydra) from Debian 12; no daemons, nothing to stop.
# Usage: bash mpi.sh   (MPI_WITH_MPI4PY=0 to skip python3-mpi4py)
set -euo pipefail
# Idempotent: installs only what is missing; starts nothing.
export DEBIAN_FRONTEND=noninteractive
pk="openmpi-bin mpich"; [ "${MPI_WITH_MPI4PY:-1}" = 1 ] && pk="$pk python3-mpi4py"
missing=0; for b in mpiexec.openmpi mpiexec.mpich; do command -v $b >/dev/null || missing=1; done
if [ $missing = 1 ] || { [ "${MPI_WITH_MPI4PY:-1}" = 1 ] && ! /usr/bin/python3 -c 'import mpi4py' 2>/dev/null; }; then
    apt-get update -qq; apt-get install -y -qq --no-install-recommends $pk >/dev/null
fi
# Open MPI refuses root and refuses more ranks than cores unless told otherwise.
# Either flags:   mpiexec.openmpi --allow-run-as-root --oversubscribe -n N prog
# or environment: (works through wrappers that only add '-n N', e.g. an MPI launcher)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
N=${MPI_NP:-4}
echo "--- Open MPI ($(mpiexec.openmpi --version | head -1))"
timeout 60 mpiexec.openmpi -n "$N" sh -c 'echo "rank $OMPI_COMM_WORLD_RANK/$OMPI_COMM_WORLD_SIZE pid $$"' | sort
echo "--- MPICH hydra (no root check, oversubscribes by default)"
timeout 60 mpiexec.mpich -n "$N" sh -c 'echo "rank $PMI_RANK/$PMI_SIZE pid $$"' | sort
if /usr/bin/python3 -c 'import mpi4py' 2>/dev/null; then
    echo "--- mpi4py (linked to Open MPI, Debian's default MPI) under mpiexec.openmpi"
    timeout 60 mpiexec.openmpi -n "$N" /usr/bin/python3 -c \
      'from mpi4py import MPI; c=MPI.COMM_WORLD; print(c.rank, c.size, c.allreduce(c.rank))' | sort
fi
echo "mpi ok (mpiexec -> $(readlink -f "$(command -v mpiexec)"))"
