//! The MPI driver: for each op × size × payload, build the send buffer from the known inputs, run
//! the collective once and verify it on every rank, then time warm-up + iterations (a barrier
//! before each, `MPI_Wtime` around the call), take the slowest rank per iteration and the median
//! over iterations, and verify the last output again. Rank 0 prints the table and writes the run.

use super::check::{self, native_reduction, Verdict};
use super::table::{self, Row};
use super::wire::{self, AlignedBytes, ChunkBytes};
use super::{format_size, Layout, Op};
use crate::formats::Format;
use crate::results::{self, Bytes, Env, ErrorStats, Record, Run, Time, SCHEMA_VERSION};
use crate::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use std::path::Path;

/// What to measure.
#[derive(Debug, Clone)]
pub struct Config {
    pub ops: Vec<Op>,
    pub sizes: Vec<u64>,
    pub payloads: Vec<Format>,
    pub iters: usize,
    pub warmup: usize,
}

/// Initialise MPI, measure every case, and on rank 0 print the table and write
/// `<out>/<run-id>.json` atomically. Fails (exit 3) when any case failed verification.
pub fn run_cli(config: &Config, out: &Path, force: bool) -> Result<()> {
    let universe = mpi::initialize().ok_or_else(|| Error::device("mpi", "MPI was already initialised"))?;
    let world = universe.world();
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    let created = crate::results::utc_now();
    let layouts: Vec<Layout> = config.sizes.iter().map(|&s| Layout::new(s, ranks)).collect::<Result<_>>()?;
    for l in &layouts {
        let total = l.ranks * ChunkBytes::of(Format::F32, l.chunk).total();
        if total > i32::MAX as usize {
            return Err(Error::invalid(
                "--sizes",
                &format_size(l.size),
                "at most 2GiB per rank (MPI counts)",
            ));
        }
    }
    let device = describe_world(&world);
    if rank == 0 {
        println!(
            "# chipbench collectives: {device}; median of {} iterations after {} warm-up, slowest rank",
            config.iters, config.warmup
        );
        println!("# sizes name the tensor by its f32 bytes; every payload carries the same elements");
        print!("{}", table::header());
    }
    let mut rows = Vec::new();
    for &op in &config.ops {
        for layout in &layouts {
            for &format in &config.payloads {
                let record = measure(&world, op, format, layout, config, &device);
                let row = Row { size: layout.size, record };
                if rank == 0 {
                    print!("{}", table::row(&row));
                }
                rows.push(row);
            }
        }
    }
    let failed = rows.iter().filter(|r| !r.record.valid).count();
    if rank == 0 {
        print!("{}", table::ratios(&rows));
        let run_id = format!("collectives-{}-np{ranks}", created.stamp);
        let run = Run {
            schema_version: SCHEMA_VERSION,
            run_id: run_id.clone(),
            created: created.rfc3339.clone(),
            tool: format!("chipbench {}", env!("CARGO_PKG_VERSION")),
            suite: "collectives".into(),
            env: local_env(),
            calibration: None,
            records: rows.into_iter().map(|r| r.record).collect(),
            complete: true,
            notes: vec![
                format!("{ranks} MPI ranks: {device}"),
                "sizes name the tensor by its f32 bytes; records give elements (m) and bytes on the wire"
                    .into(),
                "fp8 payloads: codes + one f32 scale per 1x128 tile (DeepSeek-V3 dispatch)".into(),
                "bf16/f16/fp8 reductions: decode-reduce-encode with f32 accumulation; f32: MPI_SUM".into(),
                format!(
                    "time: median over {} iterations after {} warm-up of the slowest rank",
                    config.iters, config.warmup
                ),
            ],
        };
        let path = out.join(format!("{run_id}.json"));
        results::write_atomic(&path, run.to_json().as_bytes(), force)?;
        println!("# wrote {}", path.display());
    }
    if failed > 0 {
        return Err(Error::Other(format!("{failed} collective case(s) failed verification (see the table)")));
    }
    Ok(())
}

/// The buffers of one case. Chunks are laid end to end; `w` bytes each.
struct Case {
    op: Op,
    format: Format,
    native: bool,
    send: AlignedBytes,
    /// Received chunks before the local reduction (decode-reduce-encode only).
    stage: AlignedBytes,
    /// This rank's reduced, re-encoded chunk (all-reduce by decode-reduce-encode only).
    own: AlignedBytes,
    recv: AlignedBytes,
    acc: Vec<f32>,
    scratch: Vec<f32>,
}

impl Case {
    fn new(op: Op, format: Format, layout: &Layout, rank: usize) -> Case {
        let (n, c) = (layout.ranks, layout.chunk);
        let w = ChunkBytes::of(format, c).total();
        let native = native_reduction(op, format);
        let reduce = matches!(op, Op::AllReduce | Op::ReduceScatter) && !native;
        let sent = check::send_chunks(op, format, layout, rank);
        let mut send = AlignedBytes::zeroed(sent.len());
        send.bytes_mut().copy_from_slice(&sent);
        let recv_len = if op == Op::ReduceScatter { w } else { n * w };
        Case {
            op,
            format,
            native,
            send,
            stage: AlignedBytes::zeroed(if reduce { n * w } else { 0 }),
            own: AlignedBytes::zeroed(if reduce && op == Op::AllReduce { w } else { 0 }),
            recv: AlignedBytes::zeroed(recv_len),
            acc: vec![0.0; if reduce { c } else { 0 }],
            scratch: vec![0.0; if reduce { c } else { 0 }],
        }
    }

    fn execute(&mut self, world: &SimpleCommunicator) {
        let sum = SystemOperation::sum;
        match (self.op, self.native) {
            (Op::AllToAll, _) => world.all_to_all_into(self.send.bytes(), self.recv.bytes_mut()),
            (Op::AllGather, _) => world.all_gather_into(self.send.bytes(), self.recv.bytes_mut()),
            (Op::ReduceScatter, true) => {
                world.reduce_scatter_block_into(self.send.f32s(), self.recv.f32s_mut(), sum())
            }
            (Op::AllReduce, true) => world.all_reduce_into(self.send.f32s(), self.recv.f32s_mut(), sum()),
            (Op::ReduceScatter | Op::AllReduce, false) => {
                world.all_to_all_into(self.send.bytes(), self.stage.bytes_mut());
                wire::sum_chunks(self.format, self.stage.bytes(), &mut self.acc, &mut self.scratch);
                if self.op == Op::ReduceScatter {
                    wire::encode_into(self.format, &self.acc, self.recv.bytes_mut());
                } else {
                    wire::encode_into(self.format, &self.acc, self.own.bytes_mut());
                    world.all_gather_into(self.own.bytes(), self.recv.bytes_mut());
                }
            }
        }
    }
}

/// Verdicts of all ranks combined: valid only if every rank is; worst error stats.
fn agree(world: &SimpleCommunicator, v: &Verdict) -> (bool, usize, ErrorStats) {
    let mut failures = 0i32;
    world.all_reduce_into(&i32::from(!v.valid), &mut failures, SystemOperation::sum());
    if !v.valid {
        eprintln!("chipbench: rank {}: verification failed: {}", world.rank(), v.reason);
    }
    let mine =
        [v.error.max_abs, v.error.max_rel, v.error.diff].map(|x| if x.is_nan() { f64::MAX } else { x });
    let mut worst = [0f64; 3];
    world.all_reduce_into(&mine[..], &mut worst[..], SystemOperation::max());
    let error = ErrorStats { max_abs: worst[0], max_rel: worst[1], diff: worst[2] };
    (failures == 0, failures as usize, error)
}

fn measure(
    world: &SimpleCommunicator,
    op: Op,
    format: Format,
    layout: &Layout,
    config: &Config,
    device: &str,
) -> Record {
    let rank = world.rank() as usize;
    let n = layout.ranks;
    let chunk = ChunkBytes::of(format, layout.chunk);
    let mut case = Case::new(op, format, layout, rank);
    let mut record = Record {
        backend: "mpi".into(),
        device: device.into(),
        op: op.name().into(),
        format: format.name().into(),
        act_format: format.name().into(),
        scaling: wire::scaling(format).to_string(),
        m: layout.elements(),
        n: 1,
        k: 1,
        threads: 1,
        bytes: Bytes {
            weights: 0,
            scales: (n * chunk.scales) as u64,
            activations: (n * chunk.codes) as u64,
            outputs: 0,
            total: (n * chunk.total()) as u64,
        },
        time: Time::default(),
        gflops: 0.0,
        gbs: 0.0,
        error: ErrorStats::default(),
        valid: false,
        note: describe(op, format, n * chunk.scales),
        timing: "wall-clock (MPI_Wtime around the call, slowest rank)".into(),
        memory: None,
        ranks: Some(n),
        algbw_gbs: None,
        busbw_gbs: None,
        payload: Some(format.name().into()),
        ..Default::default()
    };
    // Validate before timing: a failed case is reported, never timed as if valid.
    case.execute(world);
    let (ok, failures, error) = agree(world, &check::verify(op, format, layout, rank, case.recv.bytes()));
    record.error = error;
    if !ok {
        record.note =
            format!("verification failed on {failures} rank(s) (reasons on stderr); {}", record.note);
        return record;
    }
    let mut times = Vec::with_capacity(config.iters);
    for it in 0..config.warmup + config.iters {
        world.barrier();
        let t0 = mpi::time();
        case.execute(world);
        let t = mpi::time() - t0;
        if it >= config.warmup {
            times.push(t);
        }
    }
    let (ok, failures, error) = agree(world, &check::verify(op, format, layout, rank, case.recv.bytes()));
    if !ok {
        record.note =
            format!("the last timed output failed verification on {failures} rank(s); {}", record.note);
        return record;
    }
    record.error = error;
    let mut slowest = vec![0f64; times.len()];
    world.all_reduce_into(&times[..], &mut slowest[..], SystemOperation::max());
    record.time = time_stats(&slowest);
    let algbw = record.bytes.total as f64 / record.time.median_s.max(f64::MIN_POSITIVE) / 1e9;
    record.gbs = algbw;
    record.algbw_gbs = Some(algbw);
    record.busbw_gbs = Some(algbw * op.bus_factor(n));
    record.valid = true;
    record
}

/// Median, min, max of per-iteration times.
fn time_stats(times: &[f64]) -> Time {
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    let median = match t.len() {
        0 => 0.0,
        l if l % 2 == 1 => t[l / 2],
        l => 0.5 * (t[l / 2 - 1] + t[l / 2]),
    };
    Time {
        median_s: median,
        min_s: t.first().copied().unwrap_or(0.0),
        max_s: t.last().copied().unwrap_or(0.0),
        samples: t.len(),
        ..Default::default()
    }
}

/// How a case runs, in words (the record's note).
fn describe(op: Op, format: Format, scale_bytes: usize) -> String {
    let mut s = match (op, native_reduction(op, format)) {
        (Op::AllReduce, true) => "MPI_Allreduce(MPI_FLOAT, MPI_SUM)".to_string(),
        (Op::ReduceScatter, true) => "MPI_Reduce_scatter_block(MPI_FLOAT, MPI_SUM)".to_string(),
        (Op::AllToAll, _) => format!("MPI_Alltoall of {format} chunks"),
        (Op::AllGather, _) => format!("MPI_Allgather of {format} chunks"),
        (_, false) => format!(
            "decode-reduce-encode: MPI_Alltoall of {format} chunks, f32 accumulation in rank order, \
             re-encoded to {format}{}",
            if op == Op::AllReduce { ", MPI_Allgather of the result" } else { "" }
        ),
    };
    if format.is_fp8() {
        s.push_str(&format!("; {format} codes + one f32 scale per 1x128 tile ({scale_bytes} scale bytes)"));
    }
    s
}

/// "Open MPI v4.1.4; 2 ranks on 1 host(s)".
fn describe_world(world: &SimpleCommunicator) -> String {
    let library = mpi::environment::library_version().unwrap_or_default();
    let library = library.split(',').next().unwrap_or("MPI").trim().to_string();
    let mut name = [0u8; 64];
    let host = mpi::environment::processor_name().unwrap_or_default();
    for (d, s) in name.iter_mut().zip(host.bytes()) {
        *d = s;
    }
    let mut all = vec![0u8; 64 * world.size() as usize];
    world.all_gather_into(&name[..], &mut all[..]);
    let hosts: std::collections::BTreeSet<&[u8]> = all.chunks(64).collect();
    format!("{library}; {} ranks on {} host(s)", world.size(), hosts.len())
}

/// The environment of rank 0 (the host part of [`Env`]; no calibration for collectives).
fn local_env() -> Env {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let field = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let memory_kib: u64 =
        field(&read("/proc/meminfo"), "MemTotal").trim_end_matches("kB").trim().parse().unwrap_or(0);
    Env {
        host: mpi::environment::processor_name().unwrap_or_default(),
        os: std::env::consts::OS.into(),
        arch: std::env::consts::ARCH.into(),
        cpu_model: field(&read("/proc/cpuinfo"), "model name"),
        cpu_features: Vec::new(),
        cores,
        threads: 1,
        memory_bytes: memory_kib * 1024,
        rustc: String::new(),
        git_revision: String::new(),
        chipbench_version: env!("CARGO_PKG_VERSION").into(),
        devices: Vec::new(),
        ..Env::default()
    }
}
