//! `deploy-check slurm`: not implemented yet. The plan (docs/deploy.md): install `slurm-wlm`
//! and `munge`, write a one-node `slurm.conf`, start munged, slurmctld and slurmd under this
//! process, submit `deploy/slurm/distio.sbatch`, wait with a bound, check the master's output,
//! and stop the daemons.

pub(super) fn run() -> Result<(), String> {
    Err(
        "the Slurm check is not implemented yet; run deploy/slurm/distio.sbatch on a Slurm \
         cluster by hand (docs/deploy.md, \"Slurm\")"
            .to_owned(),
    )
}
