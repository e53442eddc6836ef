//! Pinning worker threads to cores, so a kernel's threads do not migrate between samples (a
//! migration costs a cold L1/L2 and, on a VM, can land two workers on one core).
//!
//! Linux only (`sched_setaffinity`); elsewhere [`pin_current_thread`] does nothing and says so.
//! Worker `i` goes to the `i`-th core of the process's allowed set (wrapping), so a run confined
//! by `taskset` or a cgroup keeps to its cores.

/// Cores this process may run on, in order (empty when unknown).
pub fn allowed_cores() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    // SAFETY: `set` is a plain bit set of the size the call is told; the call only writes it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            return (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect();
        }
    }
    Vec::new()
}

/// Pin the calling thread to the `index`-th allowed core (wrapping). Returns whether it was
/// pinned.
pub fn pin_current_thread(index: usize) -> bool {
    let cores = allowed_cores();
    !cores.is_empty() && pin_to_cpu(cores[index % cores.len()])
}

/// Pin the calling thread to CPU `cpu`. False where the OS refuses or cannot.
pub fn pin_to_cpu(cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    // SAFETY: a zeroed cpu_set_t is a valid empty set; pid 0 is the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        return libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0;
    }
    #[allow(unreachable_code)]
    {
        let _ = cpu;
        false
    }
}

/// Whether this OS lets chipbench pin threads (for the run's notes).
pub fn supported() -> bool {
    cfg!(target_os = "linux") && !allowed_cores().is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_a_thread_to_an_allowed_core() {
        let cores = allowed_cores();
        if cfg!(target_os = "linux") {
            assert!(!cores.is_empty());
            let got = std::thread::spawn(move || {
                let ok = pin_current_thread(1);
                (ok, allowed_cores())
            })
            .join()
            .unwrap();
            assert!(got.0);
            assert_eq!(got.1, vec![cores[1 % cores.len()]], "the thread now runs on one core");
        }
    }
}
