//! A problem uploaded to the device: codes, scales and activations go up once in `prepare`;
//! each `run` is one dispatch, one submit and one wait. With `TIMESTAMP_QUERY` the pass is timed
//! on the device (begin/end-of-pass timestamps); otherwise the caller's wall clock around
//! submit + wait is the timer.

use super::buffers::{self, groups_per_row};
use super::shader::{Decode, ScaleLookup, ShaderKey};
use super::WgpuBackend;
use crate::kernels::{BufferBytes, Op, Prepared, Problem};
use crate::{Error, Result};
use ::wgpu::BufferUsages as U;

/// Device timing: two timestamps around the compute pass, resolved and read back.
struct Timestamps {
    queries: ::wgpu::QuerySet,
    resolved: ::wgpu::Buffer,
    readback: ::wgpu::Buffer,
    /// Nanoseconds per timestamp tick.
    period_ns: f64,
}

/// `compute` of the shader kernels: every operand decoded to f32, f32 multiply-adds.
pub(crate) const SHADER_COMPUTE: &str = "shader f32 fma";

pub(crate) struct WgpuPrepared<'a> {
    backend: &'a WgpuBackend,
    pipeline: std::sync::Arc<::wgpu::ComputePipeline>,
    bind_group: ::wgpu::BindGroup,
    workgroups: (u32, u32),
    output: ::wgpu::Buffer,
    readback: ::wgpu::Buffer,
    output_bytes: u64,
    timestamps: Option<Timestamps>,
    bytes: BufferBytes,
    ran: bool,
    /// What the record's `compute` says.
    compute: &'static str,
}

/// The uniform block of both templates.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    n: u32,
    kg: u32,
    a_grid_cols: u32,
    w_grid_cols: u32,
    groups_x: u32,
    _pad: [u32; 2],
}

fn entry(binding: u32, buffer: &::wgpu::Buffer) -> ::wgpu::BindGroupEntry<'_> {
    ::wgpu::BindGroupEntry { binding, resource: buffer.as_entire_binding() }
}

fn to_u32(what: &str, v: usize) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::device("wgpu", format!("{what} = {v} exceeds the shaders' 32-bit indices")))
}

impl<'a> WgpuPrepared<'a> {
    pub(crate) fn new(backend: &'a WgpuBackend, problem: &Problem) -> Result<Self> {
        let key = backend.shader_key(problem)?;
        let (m, n, k) = (problem.m(), problem.n(), problem.k());
        let kg = groups_per_row(k);
        // Element indices into the largest operand must fit the shaders' u32 arithmetic.
        to_u32("n × k", n.max(m) * kg * 4)?;
        let (workgroups, groups_x) = dispatch(backend, &key, m, n)?;
        let params = Params {
            m: to_u32("m", m)?,
            n: to_u32("n", n)?,
            kg: to_u32("k / 4", kg)?,
            a_grid_cols: problem.a.scale_grid().1 as u32,
            w_grid_cols: problem.w.scale_grid().1 as u32,
            groups_x,
            _pad: [0; 2],
        };
        let pipeline = backend.pipeline(&key)?;

        let device = &backend.device;
        let limits = &backend.limits;
        let oom = device.push_error_scope(::wgpu::ErrorFilter::OutOfMemory);
        let a_codes = buffers::pack_rows(&problem.a);
        let w_codes = buffers::pack_rows(&problem.w);
        // The shaders read f32 scales: E8M0 codes are widened on upload.
        let (a_scales, w_scales) = (problem.a.scales.to_f32(), problem.w.scales.to_f32());
        let a_scales: &[u8] = bytemuck::cast_slice(&a_scales);
        let w_scales: &[u8] = bytemuck::cast_slice(&w_scales);
        let output_bytes = (m * n * 4) as u64;
        let a_buf = buffers::storage_buffer(device, limits, "activations", &a_codes)?;
        let as_buf = buffers::storage_buffer(device, limits, "activation scales", a_scales)?;
        let w_buf = buffers::storage_buffer(device, limits, "weights", &w_codes)?;
        let ws_buf = buffers::storage_buffer(device, limits, "weight scales", w_scales)?;
        let output =
            buffers::plain_buffer(device, limits, "outputs", output_bytes, U::STORAGE | U::COPY_SRC)?;
        let readback = buffers::plain_buffer(
            device,
            limits,
            "output read-back",
            output_bytes,
            U::MAP_READ | U::COPY_DST,
        )?;
        let params_buf = ::wgpu::util::DeviceExt::create_buffer_init(
            device,
            &::wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(&params),
                usage: U::UNIFORM,
            },
        );
        let timestamps = backend.timestamps.then(|| {
            let queries = device.create_query_set(&::wgpu::QuerySetDescriptor {
                label: Some("pass timestamps"),
                ty: ::wgpu::QueryType::Timestamp,
                count: 2,
            });
            let resolved = device.create_buffer(&::wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: 16,
                usage: U::QUERY_RESOLVE | U::COPY_SRC,
                mapped_at_creation: false,
            });
            let readback = device.create_buffer(&::wgpu::BufferDescriptor {
                label: Some("timestamp read-back"),
                size: 16,
                usage: U::MAP_READ | U::COPY_DST,
                mapped_at_creation: false,
            });
            Timestamps { queries, resolved, readback, period_ns: backend.queue.get_timestamp_period() as f64 }
        });
        let bind_group = device.create_bind_group(&::wgpu::BindGroupDescriptor {
            label: Some("chipbench operands"),
            layout: &backend.layout,
            entries: &[
                entry(0, &a_buf),
                entry(1, &as_buf),
                entry(2, &w_buf),
                entry(3, &ws_buf),
                entry(4, &output),
                entry(5, &params_buf),
            ],
        });
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(Error::device(
                "wgpu",
                format!("out of device memory uploading the operands: {}", buffers::one_line(&e.to_string())),
            ));
        }
        backend.check_errors()?;
        let bytes = BufferBytes {
            weights: w_buf.size(),
            scales: as_buf.size() + ws_buf.size(),
            activations: a_buf.size(),
            outputs: output.size(),
            workspace: readback.size() + params_buf.size() + if timestamps.is_some() { 32 } else { 0 },
        };
        Ok(WgpuPrepared {
            backend,
            pipeline,
            bind_group,
            workgroups,
            output,
            readback,
            output_bytes,
            timestamps,
            bytes,
            ran: false,
            compute: if key.coop.is_some() { super::coop::COMPUTE } else { SHADER_COMPUTE },
        })
    }
}

/// Workgroup counts (x, y) and the x extent the GEMV shader needs to find its row.
fn dispatch(backend: &WgpuBackend, key: &ShaderKey, m: usize, n: usize) -> Result<((u32, u32), u32)> {
    let max = backend.limits.max_compute_workgroups_per_dimension as usize;
    let (x, y) = match key.op {
        Op::Gemm if key.coop.is_some() => {
            (n.div_ceil(super::coop::BN as usize), m.div_ceil(super::coop::BM as usize))
        }
        Op::Gemm => (n.div_ceil(key.tile.cols() as usize), m.div_ceil(key.tile.rows() as usize)),
        Op::Gemv => {
            let x = n.clamp(1, max);
            (x, n.div_ceil(x))
        }
    };
    if x > max || y > max {
        return Err(Error::device(
            "wgpu",
            format!(
                "{} of m={m} n={n} needs {x}×{y} workgroups but the adapter's \
                 max_compute_workgroups_per_dimension is {max}",
                key.op
            ),
        ));
    }
    Ok(((x.max(1) as u32, y.max(1) as u32), x as u32))
}

impl Prepared for WgpuPrepared<'_> {
    fn run(&mut self) -> Result<Option<f64>> {
        let device = &self.backend.device;
        let mut encoder =
            device.create_command_encoder(&::wgpu::CommandEncoderDescriptor { label: Some("chipbench run") });
        {
            let timestamp_writes = self.timestamps.as_ref().map(|t| ::wgpu::ComputePassTimestampWrites {
                query_set: &t.queries,
                beginning_of_pass_write_index: Some(0),
                end_of_pass_write_index: Some(1),
            });
            let mut pass = encoder.begin_compute_pass(&::wgpu::ComputePassDescriptor {
                label: Some("chipbench"),
                timestamp_writes,
            });
            pass.set_pipeline(&self.pipeline);
            pass.set_bind_group(0, &self.bind_group, &[]);
            pass.dispatch_workgroups(self.workgroups.0, self.workgroups.1, 1);
        }
        if let Some(t) = &self.timestamps {
            encoder.resolve_query_set(&t.queries, 0..2, &t.resolved, 0);
            encoder.copy_buffer_to_buffer(&t.resolved, 0, &t.readback, 0, 16);
        }
        let index = self.backend.queue.submit([encoder.finish()]);
        buffers::wait(device, Some(index))?;
        self.backend.check_errors()?;
        self.ran = true;
        let Some(t) = &self.timestamps else { return Ok(None) };
        let raw = buffers::read(device, &t.readback, 16)?;
        let ticks: [u64; 2] = bytemuck::pod_read_unaligned(&raw);
        let ns = ticks[1].wrapping_sub(ticks[0]) as f64 * t.period_ns;
        if ticks[1] < ticks[0] || ns <= 0.0 {
            return Err(Error::device(
                "wgpu",
                format!("timestamp query returned end {} before start {}", ticks[1], ticks[0]),
            ));
        }
        Ok(Some(ns * 1e-9))
    }

    fn output(&mut self) -> Result<Vec<f32>> {
        if !self.ran {
            return Err(Error::device("wgpu", "output() asked for before the first run()"));
        }
        let device = &self.backend.device;
        let mut encoder =
            device.create_command_encoder(&::wgpu::CommandEncoderDescriptor { label: Some("read-back") });
        encoder.copy_buffer_to_buffer(&self.output, 0, &self.readback, 0, self.output.size());
        let index = self.backend.queue.submit([encoder.finish()]);
        buffers::wait(device, Some(index))?;
        let raw = buffers::read(device, &self.readback, self.output_bytes)?;
        self.backend.check_errors()?;
        Ok(bytemuck::pod_collect_to_vec(&raw))
    }

    fn buffer_bytes(&self) -> BufferBytes {
        self.bytes
    }

    fn compute(&self) -> String {
        self.compute.into()
    }

    fn timing_method(&self) -> &'static str {
        if self.timestamps.is_some() {
            "timestamp-query"
        } else {
            "wall-clock"
        }
    }
}

impl WgpuBackend {
    /// The shader a problem needs, or why it cannot run here.
    pub(crate) fn shader_key(&self, problem: &Problem) -> Result<ShaderKey> {
        let decode =
            |q: &crate::formats::QuantizedMatrix| Decode { format: q.format(), native_f16: self.native_f16 };
        let (a_scale, w_scale) = (ScaleLookup::of(&problem.a), ScaleLookup::of(&problem.w));
        for (name, s) in [("activation", a_scale), ("weight", w_scale)] {
            if !s.fits_groups() {
                return Err(Error::Unsupported(format!(
                    "wgpu: {name} scale blocks must span a multiple of 4 columns, got {s:?}"
                )));
            }
        }
        let op = problem.op;
        let coop = match (op, &self.coop) {
            (Op::Gemm, Ok(device)) => {
                super::coop::plan(*device, problem.a.format(), problem.w.format(), a_scale, w_scale).ok()
            }
            _ => None,
        };
        Ok(ShaderKey {
            op,
            a: decode(&problem.a),
            w: decode(&problem.w),
            a_scale,
            w_scale,
            tile: self.tile,
            coop,
        })
    }
}
