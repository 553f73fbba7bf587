//! `malipo bench`: throughput measurements (filled in by the benchmark work).

use clap::Args;
use malipo::config::Config;

#[derive(Args)]
pub struct BenchArgs {}

pub async fn run(_config: &Config, _args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
