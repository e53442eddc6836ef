//! `chipbench collectives`: collective communication benchmarks over MPI, launched with
//! `mpirun -np N chipbench collectives ...` (or `srun`). The subcommand exists in every build so
//! a build without the `mpi` feature can say how to get one.

use crate::collectives::{parse_payloads, parse_sizes, Op};
use crate::{Error, Result};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Collective: all-reduce, all-gather, reduce-scatter, all-to-all, or all.
    #[arg(long, default_value = "all")]
    pub op: String,
    /// Sizes of the tensor in f32 bytes: 1KiB, 64MiB, ranges a..b in powers of 2, comma lists.
    #[arg(long, default_value = "1KiB..256MiB")]
    pub sizes: String,
    /// Payload: f32, bf16, f16, e4m3, e5m2 (comma list) or all. FP8 carries 1x128 f32 scales.
    #[arg(long, default_value = "all")]
    pub payload: String,
    /// Timed iterations per case (after the warm-up).
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Warm-up iterations per case (not timed).
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Directory for results/<run-id>.json (written by rank 0).
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    /// Overwrite a results file of the same run id.
    #[arg(long)]
    pub force: bool,
}

/// Why this build cannot run collectives, and how to get one that can (one line).
pub const NEEDS_MPI: &str = "`chipbench collectives` needs the cargo feature `mpi`: install Open MPI \
and libclang (Debian/Ubuntu: apt-get install libopenmpi-dev openmpi-bin libclang-dev), build with \
`cargo build --release --features mpi`, then run `mpirun -np 2 target/release/chipbench collectives`";

pub fn exec(args: Args) -> Result<()> {
    let ops = Op::parse_list(&args.op)?;
    let sizes = parse_sizes(&args.sizes)?;
    let payloads = parse_payloads(&args.payload)?;
    if args.iters == 0 {
        return Err(Error::invalid("--iters", "0", "1 or more"));
    }
    #[cfg(feature = "mpi")]
    {
        let config = crate::collectives::bench::Config {
            ops,
            sizes,
            payloads,
            iters: args.iters,
            warmup: args.warmup,
        };
        crate::collectives::bench::run_cli(&config, &args.out, args.force)
    }
    #[cfg(not(feature = "mpi"))]
    {
        let _ = (ops, sizes, payloads, args.out, args.force);
        Err(Error::Unsupported(NEEDS_MPI.into()))
    }
}
