//! GPU backend through wgpu: WGSL compute shaders on whatever adapter the machine has (Vulkan,
//! Metal, DX12, or GL as a last resort), so one code path reaches NVIDIA, AMD, Intel and Apple
//! GPUs, and lavapipe (Mesa's Vulkan CPU driver) in CI.
//!
//! - shader.rs: the GEMM/GEMV templates and the per-format decode step substituted into them
//!   (codes travel packed: FP8 four per u32, BF16/F16 two per u32; f32 accumulation);
//! - buffers.rs: row layout, limit checks before allocation, read-back;
//! - prepared.rs: upload once, then one dispatch + submit + wait per run, timed with timestamp
//!   queries where the adapter has them.
//!
//! Failures of the device (validation, out of memory, loss, time-outs) become [`Error::Device`]
//! instead of wgpu's default panic: an uncaptured-error handler and a device-lost callback record
//! them and every submission checks.
//!
//! - coop.rs: tensor cores through wgpu's experimental cooperative matrices: a GEMM on
//!   16×16×16 f16 × f16 → f32 subgroup matrices for F16, E4M3 and E5M2 operands, taken when the
//!   adapter lists that configuration (NVIDIA's Vulkan drivers do); otherwise, and for BF16/F32
//!   and GEMV, the shader f32 kernels run. Why the path is off is in the device's
//!   `coop_matrix_path` (shown by `chipbench info`).

mod buffers;
mod coop;
mod prepared;
mod shader;

pub use shader::Tile;

use super::{Backend, Capability, DeviceInfo, Op, Prepared, Problem, Support};
use crate::formats::Format;
use crate::{Error, Result};
use shader::ShaderKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Knobs for tests and experiments; `Default` is what `chipbench` uses.
#[derive(Debug, Clone, Default)]
pub struct WgpuOptions {
    /// Never use `SHADER_F16` even where the adapter has it (exercises the emulated F16 path).
    pub no_shader_f16: bool,
    /// Ask the device for at most this many bytes per storage binding / buffer (a lower limit
    /// than the adapter's, enforced by the device).
    pub max_buffer_bytes: Option<u64>,
    /// GEMM tiling; by default [`Tile::SMALL`] on CPU adapters and [`Tile::LARGE`] on GPUs.
    pub tile: Option<Tile>,
    /// Never use cooperative matrices even where the adapter has them (the shader f32 GEMM runs).
    pub no_coop_matrix: bool,
}

/// The wgpu backend: one adapter, one device, a cache of compiled pipelines.
pub struct WgpuBackend {
    info: DeviceInfo,
    device: ::wgpu::Device,
    queue: ::wgpu::Queue,
    limits: ::wgpu::Limits,
    native_f16: bool,
    timestamps: bool,
    tile: Tile,
    /// The cooperative-matrix GEMM's device parameters, or why GEMMs run on the shader kernels.
    coop: std::result::Result<coop::CoopDevice, String>,
    layout: ::wgpu::BindGroupLayout,
    pipeline_layout: ::wgpu::PipelineLayout,
    pipelines: Mutex<HashMap<ShaderKey, Arc<::wgpu::ComputePipeline>>>,
    /// Errors the device reported outside an error scope (and device loss), oldest first.
    errors: Arc<Mutex<Vec<String>>>,
}

impl std::fmt::Debug for WgpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgpuBackend").field("device", &self.info).finish_non_exhaustive()
    }
}

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` asks the Wayland display which
/// GPU is the default; on a headless machine (no usable XDG_RUNTIME_DIR) libwayland then prints
/// "error: XDG_RUNTIME_DIR is invalid or not set in the environment." for every instance,
/// though nothing failed. Without a display the layer has nothing to choose by, so it is
/// switched off there with its own `NODEVICE_SELECT` variable, unless the user set that or
/// chose a device with `MESA_VK_DEVICE_SELECT`. Done once, before the first instance (the
/// Vulkan loader reads the environment when an instance is created).
fn quiet_headless_vulkan() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let var = std::env::var_os;
        let runtime_dir = var("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
        let chosen = var("NODEVICE_SELECT").is_some() || var("MESA_VK_DEVICE_SELECT").is_some();
        if !runtime_dir && var("WAYLAND_SOCKET").is_none() && !chosen {
            std::env::set_var("NODEVICE_SELECT", "1");
        }
    });
}

/// An instance of `backends` (narrowed further by WGPU_BACKEND etc. from the environment).
fn instance(backends: ::wgpu::Backends) -> ::wgpu::Instance {
    quiet_headless_vulkan();
    let mut desc = ::wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends &= backends;
    ::wgpu::Instance::new(desc)
}

/// Adapters of the primary APIs (Vulkan, Metal, DX12) first, then GL: this order is what
/// `--adapter N` indexes. With `gl_if_needed`, GL is only asked when no primary adapter exists.
/// GL gets an instance of its own, created only then: creating a GL instance opens EGL, which
/// is slow and, on a headless machine, prints "error: XDG_RUNTIME_DIR is invalid ..." lines
/// from the display libraries though nothing failed.
fn adapters(gl_if_needed: bool) -> Vec<::wgpu::Adapter> {
    let primary = ::wgpu::Backends::PRIMARY;
    let mut v = pollster::block_on(instance(primary).enumerate_adapters(primary));
    if !gl_if_needed || v.is_empty() {
        let rest = ::wgpu::Backends::all() - primary;
        v.extend(pollster::block_on(instance(rest).enumerate_adapters(rest)));
    }
    v
}

fn api_name(b: ::wgpu::Backend) -> &'static str {
    match b {
        ::wgpu::Backend::Vulkan => "Vulkan",
        ::wgpu::Backend::Metal => "Metal",
        ::wgpu::Backend::Dx12 => "Dx12",
        ::wgpu::Backend::Gl => "Gl",
        ::wgpu::Backend::BrowserWebGpu => "WebGpu",
        ::wgpu::Backend::Noop => "Noop",
    }
}

fn kind_name(t: ::wgpu::DeviceType) -> &'static str {
    match t {
        ::wgpu::DeviceType::DiscreteGpu => "discrete-gpu",
        ::wgpu::DeviceType::IntegratedGpu => "integrated-gpu",
        ::wgpu::DeviceType::VirtualGpu => "virtual-gpu",
        ::wgpu::DeviceType::Cpu => "software",
        ::wgpu::DeviceType::Other => "other",
    }
}

/// The features that matter to these kernels, plus the buffer limit.
fn feature_names(features: ::wgpu::Features, limits: &::wgpu::Limits) -> Vec<String> {
    let mut v: Vec<String> = [
        (::wgpu::Features::SHADER_F16, "shader-f16"),
        (::wgpu::Features::TIMESTAMP_QUERY, "timestamp-query"),
        (::wgpu::Features::SUBGROUP, "subgroup"),
        (::wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX, "cooperative-matrix"),
        (::wgpu::Features::SHADER_INT64, "shader-int64"),
    ]
    .into_iter()
    .filter(|(f, _)| features.contains(*f))
    .map(|(_, n)| n.to_string())
    .collect();
    v.push(format!("max-storage-binding={}MiB", limits.max_storage_buffer_binding_size >> 20));
    v
}

fn device_info(adapter: &::wgpu::Adapter) -> DeviceInfo {
    let info = adapter.get_info();
    let driver = [info.driver.trim(), info.driver_info.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    DeviceInfo {
        name: info.name.clone(),
        kind: kind_name(info.device_type).into(),
        api: api_name(info.backend).into(),
        driver,
        features: feature_names(adapter.features(), &adapter.limits()),
        coop_matrix: adapter.cooperative_matrix_properties().iter().map(coop::describe).collect(),
        ..Default::default()
    }
}

/// Preference when no adapter is named: real GPUs first, GL last (it is the silent fallback of a
/// broken Vulkan install and lacks compute features).
fn rank(adapter: &::wgpu::Adapter) -> (u8, u8) {
    let info = adapter.get_info();
    let kind = match info.device_type {
        ::wgpu::DeviceType::DiscreteGpu => 0,
        ::wgpu::DeviceType::IntegratedGpu => 1,
        ::wgpu::DeviceType::VirtualGpu => 2,
        ::wgpu::DeviceType::Other => 3,
        ::wgpu::DeviceType::Cpu => 4,
    };
    (u8::from(info.backend == ::wgpu::Backend::Gl), kind)
}

/// The adapters wgpu can see, in the order `--adapter N` indexes them; GL adapters only when
/// no Vulkan/Metal/DX12 adapter exists (they would follow the primary ones; `WGPU_BACKEND=gl`
/// lists them).
pub fn list_adapters() -> Vec<DeviceInfo> {
    adapters(true).iter().map(device_info).collect()
}

impl WgpuBackend {
    /// Open adapter `adapter` (index into [`list_adapters`]), or the best one.
    pub fn new(adapter: Option<usize>) -> Result<Self> {
        Self::with_options(adapter, WgpuOptions::default())
    }

    pub fn with_options(adapter: Option<usize>, options: WgpuOptions) -> Result<Self> {
        let mut all = adapters(true);
        if adapter.is_some_and(|i| i >= all.len()) {
            all = adapters(false); // an index past the primary adapters names a GL one
        }
        if all.is_empty() {
            return Err(Error::device(
                "wgpu",
                "no GPU adapter found (no Vulkan/Metal/DX12/GL driver; on Linux install Mesa's \
                 mesa-vulkan-drivers for lavapipe or the GPU vendor's Vulkan driver)",
            ));
        }
        let chosen = match adapter {
            Some(i) if i < all.len() => all.swap_remove(i),
            Some(i) => {
                return Err(Error::invalid(
                    "--adapter",
                    &i.to_string(),
                    &format!("0..{} (see `chipbench info`)", all.len() - 1),
                ))
            }
            None => {
                all.sort_by_key(rank);
                all.swap_remove(0)
            }
        };
        Self::open(chosen, options)
    }

    fn open(adapter: ::wgpu::Adapter, options: WgpuOptions) -> Result<Self> {
        let mut info = device_info(&adapter);
        let adapter_info = adapter.get_info();
        if adapter_info.backend == ::wgpu::Backend::Gl {
            let note = "WARNING: OpenGL fallback (Vulkan unavailable or broken): expect poor compute";
            eprintln!("chipbench: wgpu adapter '{}' is {note}", info.name);
            info.driver = format!("{} [{note}]", info.driver);
        }
        let available = adapter.features();
        let mut features = ::wgpu::Features::empty();
        for f in [::wgpu::Features::SHADER_F16, ::wgpu::Features::TIMESTAMP_QUERY] {
            if available.contains(f) && !(f == ::wgpu::Features::SHADER_F16 && options.no_shader_f16) {
                features |= f;
            }
        }
        let mut limits = adapter.limits();
        if let Some(cap) = options.max_buffer_bytes {
            limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(cap);
            limits.max_buffer_size = limits.max_buffer_size.min(cap);
        }
        let mut facts = coop::DeviceFacts::of(&adapter);
        if options.no_coop_matrix {
            facts.disabled = Some("turned off by the caller (no_coop_matrix)");
        } else if options.no_shader_f16 {
            facts.disabled = Some("turned off with SHADER_F16 (no_shader_f16)");
        }
        let mut coop = coop::device_plan(&facts, coop::Tuning::from_env()?);
        let request = |features: ::wgpu::Features| {
            let experimental_features =
                if features.contains(::wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
                    // SAFETY: wgpu's token for its experimental features says they may hold bugs; the
                    // cooperative-matrix kernel is only taken when the adapter lists its exact
                    // configuration, and its results are checked against the f64 reference like every
                    // kernel's (tests/backend_wgpu.rs on a GPU that has the path).
                    unsafe { ::wgpu::ExperimentalFeatures::enabled() }
                } else {
                    ::wgpu::ExperimentalFeatures::disabled()
                };
            pollster::block_on(adapter.request_device(&::wgpu::DeviceDescriptor {
                label: Some("chipbench"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features,
                memory_hints: ::wgpu::MemoryHints::Performance,
                ..Default::default()
            }))
        };
        let opened = match &coop {
            Ok(_) => match request(features | coop::required_features()) {
                Ok(pair) => Ok(pair),
                Err(e) => {
                    coop = Err(format!(
                        "opening the device with cooperative matrices failed: {}",
                        buffers::one_line(&e.to_string())
                    ));
                    request(features)
                }
            },
            Err(_) => request(features),
        };
        let (device, queue) = opened.map_err(|e| {
            Error::device("wgpu", format!("opening '{}': {}", info.name, buffers::one_line(&e.to_string())))
        })?;
        info.coop_matrix_path = match &coop {
            Ok(d) => format!("on: GEMM a/w in F16, E4M3, E5M2 runs {} ({})", coop::COMPUTE, d.tuning),
            Err(why) => format!("off: {why}"),
        };

        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: ::wgpu::Error| {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(buffers::one_line(&e.to_string()));
        }));
        let sink = errors.clone();
        device.set_device_lost_callback(move |reason, message| {
            if reason != ::wgpu::DeviceLostReason::Destroyed {
                let msg = format!("device lost ({reason:?}): {}", buffers::one_line(&message));
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(msg);
            }
        });

        let storage = |binding, read_only| ::wgpu::BindGroupLayoutEntry {
            binding,
            visibility: ::wgpu::ShaderStages::COMPUTE,
            ty: ::wgpu::BindingType::Buffer {
                ty: ::wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&::wgpu::BindGroupLayoutDescriptor {
            label: Some("chipbench operands"),
            entries: &[
                storage(0, true),
                storage(1, true),
                storage(2, true),
                storage(3, true),
                storage(4, false),
                ::wgpu::BindGroupLayoutEntry {
                    binding: 5,
                    visibility: ::wgpu::ShaderStages::COMPUTE,
                    ty: ::wgpu::BindingType::Buffer {
                        ty: ::wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&::wgpu::PipelineLayoutDescriptor {
            label: Some("chipbench"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let tile = options.tile.unwrap_or(if adapter_info.device_type == ::wgpu::DeviceType::Cpu {
            Tile::SMALL
        } else {
            Tile::LARGE
        });
        Ok(WgpuBackend {
            info,
            native_f16: features.contains(::wgpu::Features::SHADER_F16),
            timestamps: features.contains(::wgpu::Features::TIMESTAMP_QUERY),
            limits: device.limits(),
            device,
            queue,
            tile,
            coop,
            layout,
            pipeline_layout,
            pipelines: Mutex::new(HashMap::new()),
            errors,
        })
    }

    /// Whether F16 runs through the `f16` shader type (`SHADER_F16`) or is emulated.
    pub fn native_f16(&self) -> bool {
        self.native_f16
    }

    /// The cooperative-matrix configuration GEMMs use (`Ok`), or why they run on the shader
    /// f32 kernels.
    pub fn coop_matrix(&self) -> std::result::Result<&'static str, &str> {
        self.coop.as_ref().map(|_| coop::COMPUTE).map_err(|e| e.as_str())
    }

    /// Whether runs are timed with GPU timestamp queries.
    pub fn has_timestamps(&self) -> bool {
        self.timestamps
    }

    /// The device's limits (as requested from the adapter).
    pub fn limits(&self) -> &::wgpu::Limits {
        &self.limits
    }

    /// The first error the device reported since the last check, as an [`Error::Device`].
    fn check_errors(&self) -> Result<()> {
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.is_empty() {
            return Ok(());
        }
        let first = errors.remove(0);
        let more = errors.len();
        errors.clear();
        let more = if more > 0 { format!(" (and {more} more)") } else { String::new() };
        Err(Error::device("wgpu", format!("{first}{more}")))
    }

    /// The compiled pipeline for `key`, compiling it on first use.
    fn pipeline(&self, key: &ShaderKey) -> Result<Arc<::wgpu::ComputePipeline>> {
        if let Some(p) = self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).get(key) {
            return Ok(p.clone());
        }
        let label = key.label();
        let source = key.source();
        let scope = self.device.push_error_scope(::wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(::wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: ::wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = self.device.create_compute_pipeline(&::wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&self.pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::device("wgpu", format!("{label}: {}", buffers::one_line(&e.to_string()))));
        }
        self.check_errors()?;
        let pipeline = Arc::new(pipeline);
        self.pipelines.lock().unwrap_or_else(|p| p.into_inner()).insert(*key, pipeline.clone());
        Ok(pipeline)
    }

    fn format_support(&self, format: Format) -> Support {
        if format == Format::F16 && !self.native_f16 {
            Support::Emulated(
                "f16 decoded with unpack2x16float: the device runs without SHADER_F16".to_string(),
            )
        } else {
            Support::Native
        }
    }
}

impl Backend for WgpuBackend {
    fn name(&self) -> &'static str {
        "wgpu"
    }
    fn device(&self) -> DeviceInfo {
        self.info.clone()
    }
    fn threads(&self) -> usize {
        1
    }
    fn capabilities(&self) -> Vec<Capability> {
        [Op::Gemm, Op::Gemv]
            .into_iter()
            .flat_map(|op| {
                Format::ALL.into_iter().map(move |format| Capability {
                    op,
                    format,
                    support: self.format_support(format),
                })
            })
            .collect()
    }
    fn support(&self, problem: &Problem) -> Support {
        if let Err(e) = self.shader_key(problem) {
            return Support::Unsupported(e.to_string());
        }
        // Emulated if either operand is.
        match (self.format_support(problem.a.format()), self.format_support(problem.w.format())) {
            (Support::Native, s) | (s, _) => s,
        }
    }
    fn prepare<'a>(&'a self, problem: &'a Problem) -> Result<Box<dyn Prepared + 'a>> {
        Ok(Box::new(prepared::WgpuPrepared::new(self, problem)?))
    }
}
