//! What the dynamic loader would do, worked out before asking it: the file a bare name resolves
//! to ([`resolve`]), the shared objects an ELF library needs (its `DT_NEEDED` entries, read
//! from its headers alone: [`needed`]), and the order that loads a family of libraries leaves
//! first ([`leaves_first`]).
//!
//! Why: a binding (cudarc) dlopens a bare name, which may reach another installation than the
//! one netml preloads; and loading a library by full path makes the dynamic loader resolve
//! what it needs by soname through its search path (`LD_LIBRARY_PATH` first), which may reach
//! another installation of the same family (the H200 machine has cuDNN 9.14 in `/usr/lib/x86_64-linux-gnu` and pip's
//! cuDNN on `LD_LIBRARY_PATH`). Loaded leaves first, every member a library needs is already
//! loaded, and glibc matches it by soname instead of searching.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_NEEDED: u64 = 1;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
/// Bounds on what a header may make us read (a hostile or broken file).
const MAX_HEADERS: usize = 4096;
const MAX_TABLE: u64 = 16 << 20;

fn read_at(f: &mut File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0; len];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// The `DT_NEEDED` names of the 64-bit little-endian ELF file at `path` (empty for a file
/// without a dynamic section); an error for anything else.
pub fn needed(path: &Path) -> std::io::Result<Vec<String>> {
    let mut f = File::open(path)?;
    let eh = read_at(&mut f, 0, 64)?;
    if eh[..4] != *b"\x7fELF" || eh[4] != 2 || eh[5] != 1 {
        return Err(invalid("not a 64-bit little-endian ELF file"));
    }
    let (phoff, phentsize, phnum) = (u64_at(&eh, 0x20), u16_at(&eh, 0x36), u16_at(&eh, 0x38));
    if usize::from(phnum) > MAX_HEADERS || phentsize < 56 {
        return Err(invalid("program headers"));
    }
    let ph = read_at(&mut f, phoff, usize::from(phnum) * usize::from(phentsize))?;
    // (type, file offset, virtual address, file size) of each program header.
    let headers: Vec<(u32, u64, u64, u64)> = ph
        .chunks_exact(usize::from(phentsize))
        .map(|h| (u32_at(h, 0), u64_at(h, 8), u64_at(h, 16), u64_at(h, 32)))
        .collect();
    let Some(&(_, dyn_off, _, dyn_size)) = headers.iter().find(|h| h.0 == PT_DYNAMIC) else {
        return Ok(Vec::new());
    };
    if dyn_size > MAX_TABLE {
        return Err(invalid("dynamic section"));
    }
    let dynamic = read_at(&mut f, dyn_off, dyn_size as usize)?;
    let (mut names, mut strtab, mut strsz) = (Vec::new(), None, 0u64);
    for entry in dynamic.chunks_exact(16) {
        match (u64_at(entry, 0), u64_at(entry, 8)) {
            (DT_NULL, _) => break,
            (DT_NEEDED, at) => names.push(at),
            (DT_STRTAB, vaddr) => strtab = Some(vaddr),
            (DT_STRSZ, size) => strsz = size,
            _ => {}
        }
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let vaddr = strtab.ok_or_else(|| invalid("no string table"))?;
    let offset = headers
        .iter()
        .find(|&&(t, _, va, size)| t == PT_LOAD && (va..va + size).contains(&vaddr))
        .map(|&(_, off, va, _)| off + (vaddr - va))
        .ok_or_else(|| invalid("string table outside the file"))?;
    if strsz > MAX_TABLE {
        return Err(invalid("string table"));
    }
    let table = read_at(&mut f, offset, strsz as usize)?;
    names
        .into_iter()
        .map(|at| {
            let rest = table.get(at as usize..).ok_or_else(|| invalid("name"))?;
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
        })
        .collect()
}

/// `paths` (a family of libraries, each file named by its soname) ordered so that every one
/// comes after the members it needs (`needs`: its `DT_NEEDED` names); ties and cycles keep
/// the given order.
pub fn leaves_first(paths: Vec<PathBuf>, needs: impl Fn(&Path) -> Vec<String>) -> Vec<PathBuf> {
    let name = |p: &Path| p.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut left: Vec<(PathBuf, Vec<String>)> = paths
        .into_iter()
        .map(|p| {
            let n = needs(&p);
            (p, n)
        })
        .collect();
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let waits = |needed: &[String], me: &Path| {
            left.iter()
                .any(|(other, _)| other != me && name(other).is_some_and(|o| needed.contains(&o)))
        };
        let next = left
            .iter()
            .position(|(p, needed)| !waits(needed, p))
            .unwrap_or(0);
        out.push(left.remove(next).0);
    }
    out
}

/// The file glibc's `dlopen(name)` would load for a bare `name` (no slash) in this process,
/// worked out without loading it: each folder of `LD_LIBRARY_PATH`, then the loader's cache
/// (`ldconfig -p`), then the default folders. (The executable's RUNPATH, which netml does not
/// set, is not looked at.)
pub fn resolve(name: &str) -> Option<PathBuf> {
    let defaults = [
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib64",
        "/usr/lib64",
        "/lib",
        "/usr/lib",
    ]
    .map(PathBuf::from);
    resolve_in(
        name,
        std::env::var_os("LD_LIBRARY_PATH").as_deref(),
        loader_cache(),
        &defaults,
    )
}

/// `ldconfig -p` (the loader's cache, as text), asked once per process: [`resolve`] runs for
/// each of a binding's candidate names.
fn loader_cache() -> &'static str {
    static CACHE: OnceLock<String> = OnceLock::new();
    CACHE.get_or_init(|| {
        ["ldconfig", "/sbin/ldconfig", "/usr/sbin/ldconfig"]
            .iter()
            .find_map(|exe| Command::new(exe).arg("-p").output().ok())
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    })
}

/// [`resolve`] over the given `LD_LIBRARY_PATH`, `ldconfig -p` output and default folders.
pub fn resolve_in(
    name: &str,
    ld_library_path: Option<&OsStr>,
    ldconfig_p: &str,
    defaults: &[PathBuf],
) -> Option<PathBuf> {
    let listed: Vec<PathBuf> = ld_library_path.map_or_else(Vec::new, |v| split_dirs(v).collect());
    if let Some(found) = find_in(name, &listed) {
        return Some(found);
    }
    // Lines like "\tlibcudnn.so.9 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcudnn.so.9".
    let cached = ldconfig_p.lines().find_map(|line| {
        let (left, path) = line.split_once(" => ")?;
        let (soname, flags) = left.trim().split_once(' ')?;
        (soname == name && flags.contains("x86-64")).then(|| PathBuf::from(path.trim()))
    });
    if let Some(found) = cached.filter(|p| p.is_file()) {
        return Some(found);
    }
    find_in(name, defaults)
}

/// The first folder of `dirs` that holds `file`.
pub fn find_in(file: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(file)).find(|p| p.is_file())
}

/// The folders of a colon-separated list (`LD_LIBRARY_PATH`), empty entries left out.
pub(crate) fn split_dirs(v: &OsStr) -> impl Iterator<Item = PathBuf> + '_ {
    std::env::split_paths(v).filter(|p| !p.as_os_str().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_binary_needs_libc() {
        let exe = std::env::current_exe().unwrap();
        let names = needed(&exe).unwrap();
        assert!(names.iter().any(|n| n == "libc.so.6"), "{names:?}");
    }

    #[test]
    fn what_is_not_elf_is_refused() {
        let dir = std::env::temp_dir().join(format!("netml-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("libnot.so.1");
        std::fs::write(&file, vec![b'x'; 100]).unwrap();
        assert!(needed(&file).is_err());
        std::fs::write(&file, b"\x7fELF").unwrap();
        assert!(needed(&file).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// cuDNN 9's sub-libraries, as their DT_NEEDED entries say (graph is the leaf), listed in
    /// file-name order: loaded that way, adv would pull ops and graph in through the search.
    #[test]
    fn cudnn_like_family_loads_graph_first() {
        let deps = |p: &Path| -> Vec<String> {
            let n = p.file_name().unwrap().to_str().unwrap();
            let v: &[&str] = match n {
                "libcudnn_adv.so.9" => &["libcudnn_ops.so.9", "libcudnn_graph.so.9", "libc.so.6"],
                "libcudnn_cnn.so.9" => &["libcudnn_ops.so.9", "libcudnn_graph.so.9"],
                "libcudnn_ops.so.9" => &["libcudnn_graph.so.9"],
                "libcudnn_heuristic.so.9" => &["libcudnn_graph.so.9"],
                _ => &["libstdc++.so.6"],
            };
            v.iter().map(|s| s.to_string()).collect()
        };
        let names = [
            "libcudnn_adv.so.9",
            "libcudnn_cnn.so.9",
            "libcudnn_graph.so.9",
            "libcudnn_heuristic.so.9",
            "libcudnn_ops.so.9",
        ];
        let paths: Vec<PathBuf> = names.iter().map(|n| Path::new("/x").join(n)).collect();
        let order: Vec<String> = leaves_first(paths, deps)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            order,
            [
                "libcudnn_graph.so.9",
                "libcudnn_heuristic.so.9",
                "libcudnn_ops.so.9",
                "libcudnn_adv.so.9",
                "libcudnn_cnn.so.9"
            ]
        );
    }

    #[test]
    fn a_cycle_keeps_the_given_order() {
        let deps = |p: &Path| -> Vec<String> {
            match p.file_name().unwrap().to_str().unwrap() {
                "a" => vec!["b".into()],
                _ => vec!["a".into()],
            }
        };
        let order = leaves_first(vec!["/a".into(), "/b".into()], deps);
        assert_eq!(order, [PathBuf::from("/a"), PathBuf::from("/b")]);
    }
    #[test]
    fn a_bare_name_resolves_as_the_loader_searches() {
        let tmp = std::env::temp_dir().join(format!("netml-resolve-{}", std::process::id()));
        let (first, second, cached, default) =
            (tmp.join("a"), tmp.join("b"), tmp.join("c"), tmp.join("d"));
        for d in [&first, &second, &cached, &default] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(second.join("libx.so"), b"").unwrap();
        std::fs::write(cached.join("libx.so"), b"").unwrap();
        std::fs::write(default.join("libx.so"), b"").unwrap();
        std::fs::write(cached.join("liby.so.1"), b"").unwrap();
        let path = std::env::join_paths([&first, &second]).unwrap();
        let cache = format!(
            "2 libs found in cache\n\tliby.so.1 (libc6) => /nonexistent/liby.so.1\n\
             \tliby.so.1 (libc6,x86-64) => {}\n\tlibx.so (libc6,x86-64) => {}\n",
            cached.join("liby.so.1").display(),
            cached.join("libx.so").display()
        );
        let defaults = [default.clone()];
        // LD_LIBRARY_PATH in order, before the cache.
        assert_eq!(
            resolve_in("libx.so", Some(path.as_os_str()), &cache, &defaults),
            Some(second.join("libx.so"))
        );
        // Then the cache (64-bit entries only), then the default folders.
        assert_eq!(
            resolve_in("libx.so", None, &cache, &defaults),
            Some(cached.join("libx.so"))
        );
        assert_eq!(
            resolve_in("liby.so.1", None, &cache, &defaults),
            Some(cached.join("liby.so.1"))
        );
        assert_eq!(
            resolve_in("libx.so", None, "", &defaults),
            Some(default.join("libx.so"))
        );
        assert_eq!(
            resolve_in("libz.so", Some(path.as_os_str()), &cache, &defaults),
            None
        );
        std::fs::remove_dir_all(&tmp).unwrap();
    }

    #[test]
    fn glibc_resolves_on_this_machine() {
        let libc = resolve("libc.so.6").expect("libc.so.6 is found");
        assert!(libc.is_file());
        assert!(needed(&libc).is_ok());
        assert_eq!(resolve("libnetml-no-such-library.so"), None);
    }
}
