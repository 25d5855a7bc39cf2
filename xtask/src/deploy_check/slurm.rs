//! `deploy-check slurm` (placeholder).

pub(super) fn run() -> Result<(), String> {
    Err("not yet".to_owned())
}
