//! Device buffers: the code layout the shaders read, size checks against the adapter's limits
//! (before anything is created, so an oversized problem is a one-line error, not a panic), and
//! read-back through a mapped staging buffer.

use super::shader::GROUP;
use crate::formats::QuantizedMatrix;
use crate::{Error, Result};
use ::wgpu::util::DeviceExt;
use std::sync::mpsc;
use std::time::Duration;

/// How long a submission may run before it counts as a lost device.
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(300);

/// Groups of [`GROUP`] elements per row of a `_ × cols` matrix.
pub(crate) fn groups_per_row(cols: usize) -> usize {
    cols.div_ceil(GROUP)
}

/// Codes of `q` with every row padded by zero codes to whole groups (zero decodes to 0.0 in every
/// format, so the padding adds nothing to a dot product).
pub(crate) fn pack_rows(q: &QuantizedMatrix) -> Vec<u8> {
    let elem = q.format().bytes();
    let row_bytes = q.cols * elem;
    let stride = groups_per_row(q.cols) * GROUP * elem;
    let src = q.codes.as_bytes();
    if stride == row_bytes {
        return src.to_vec();
    }
    let mut out = vec![0u8; q.rows * stride];
    for (dst, row) in out.chunks_exact_mut(stride).zip(src.chunks_exact(row_bytes.max(1))) {
        dst[..row_bytes].copy_from_slice(row);
    }
    out
}

/// Refuse a buffer the adapter cannot hold, naming the limit.
pub(crate) fn check_size(what: &str, bytes: u64, limits: &::wgpu::Limits, storage: bool) -> Result<()> {
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let mut checks = vec![];
    if storage {
        checks.push(("max_storage_buffer_binding_size", limits.max_storage_buffer_binding_size));
    }
    checks.push(("max_buffer_size", limits.max_buffer_size));
    for (name, limit) in checks {
        if bytes > limit {
            return Err(Error::device(
                "wgpu",
                format!(
                    "{what} buffer needs {bytes} bytes ({:.1} MiB) but the device's {name} is {limit} bytes \
                     ({:.1} MiB); use a smaller shape or a device with a larger limit",
                    mib(bytes),
                    mib(limit)
                ),
            ));
        }
    }
    Ok(())
}

/// A storage buffer initialised from `contents` (at least 16 bytes: a binding is never empty).
pub(crate) fn storage_buffer(
    device: &::wgpu::Device,
    limits: &::wgpu::Limits,
    what: &str,
    contents: &[u8],
) -> Result<::wgpu::Buffer> {
    let padded;
    let contents = if contents.len() < 16 || contents.len().next_multiple_of(4) != contents.len() {
        padded = {
            let mut v = contents.to_vec();
            v.resize(contents.len().next_multiple_of(4).max(16), 0);
            v
        };
        &padded[..]
    } else {
        contents
    };
    check_size(what, contents.len() as u64, limits, true)?;
    Ok(device.create_buffer_init(&::wgpu::util::BufferInitDescriptor {
        label: Some(what),
        contents,
        usage: ::wgpu::BufferUsages::STORAGE,
    }))
}

/// An uninitialised buffer of `bytes` (rounded up to 4).
pub(crate) fn plain_buffer(
    device: &::wgpu::Device,
    limits: &::wgpu::Limits,
    what: &str,
    bytes: u64,
    usage: ::wgpu::BufferUsages,
) -> Result<::wgpu::Buffer> {
    let bytes = bytes.next_multiple_of(4).max(16);
    check_size(what, bytes, limits, usage.contains(::wgpu::BufferUsages::STORAGE))?;
    Ok(device.create_buffer(&::wgpu::BufferDescriptor {
        label: Some(what),
        size: bytes,
        usage,
        mapped_at_creation: false,
    }))
}

/// Block until the device has finished `index` (or everything, for `None`).
pub(crate) fn wait(device: &::wgpu::Device, index: Option<::wgpu::SubmissionIndex>) -> Result<()> {
    device
        .poll(::wgpu::PollType::Wait { submission_index: index, timeout: Some(WAIT_TIMEOUT) })
        .map(|_| ())
        .map_err(|e| Error::device("wgpu", format!("waiting for the device: {}", one_line(&e.to_string()))))
}

/// Map `buffer` (MAP_READ) and copy out its first `bytes` bytes.
pub(crate) fn read(device: &::wgpu::Device, buffer: &::wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
    let slice = buffer.slice(..bytes.next_multiple_of(4));
    let (tx, rx) = mpsc::channel();
    slice.map_async(::wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    wait(device, None)?;
    let mapped = rx
        .recv_timeout(Duration::from_secs(1))
        .map_err(|_| Error::device("wgpu", "mapping a read-back buffer never completed"))?;
    mapped.map_err(|e| Error::device("wgpu", format!("mapping a read-back buffer: {e}")))?;
    let data = {
        let view = slice
            .get_mapped_range()
            .map_err(|e| Error::device("wgpu", format!("reading a mapped buffer: {e}")))?;
        view[..bytes as usize].to_vec()
    };
    buffer.unmap();
    Ok(data)
}

/// wgpu's messages span lines; errors here are one line.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{scaling::Role, Format, Scaling};

    #[test]
    fn rows_are_padded_to_whole_groups_with_zero_codes() {
        let v: Vec<f32> = (0..3 * 5).map(|i| i as f32 + 1.0).collect();
        let q = QuantizedMatrix::quantize(&v, 3, 5, Format::E4M3, Scaling::NONE, Role::Weights).unwrap();
        let packed = pack_rows(&q);
        assert_eq!(packed.len(), 3 * 8);
        let codes = q.codes.as_bytes();
        for r in 0..3 {
            assert_eq!(&packed[r * 8..r * 8 + 5], &codes[r * 5..r * 5 + 5]);
            assert_eq!(&packed[r * 8 + 5..r * 8 + 8], &[0, 0, 0]);
        }
        let q =
            QuantizedMatrix::quantize(&v[..12], 3, 4, Format::BF16, Scaling::NONE, Role::Weights).unwrap();
        assert_eq!(pack_rows(&q), q.codes.as_bytes());
    }

    #[test]
    fn oversized_buffers_are_refused_naming_the_limit() {
        let limits = ::wgpu::Limits { max_storage_buffer_binding_size: 1000, ..Default::default() };
        let e = check_size("weights", 4000, &limits, true).unwrap_err().to_string();
        assert!(e.contains("max_storage_buffer_binding_size is 1000 bytes") && !e.contains('\n'), "{e}");
        assert!(check_size("weights", 1000, &limits, true).is_ok());
        assert!(check_size("read-back", 4000, &limits, false).is_ok());
    }
}
