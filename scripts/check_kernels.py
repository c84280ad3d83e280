"""NVRTC 13.0 + ptxas check of netml's CUDA sources (see scripts/check-kernels)."""

import argparse
import ctypes
import pathlib
import re
import subprocess
import sys

ARCHS = ("80", "90")


def nvrtc(tools: pathlib.Path) -> ctypes.CDLL:
    lib = tools / "nvidia/cu13/lib/libnvrtc.so.13"
    return ctypes.CDLL(str(lib))


def compile_ptx(lib, name: str, source: str, headers: dict, arch: str):
    """Returns (ptx, log); raises on a compile error."""
    prog = ctypes.c_void_p()
    hnames = [h.encode() for h in headers]
    hsrcs = [headers[h].encode() for h in headers]
    n = len(headers)
    rc = lib.nvrtcCreateProgram(
        ctypes.byref(prog), source.encode(), name.encode(), n,
        (ctypes.c_char_p * n)(*hsrcs), (ctypes.c_char_p * n)(*hnames))
    if rc != 0:
        raise RuntimeError(f"nvrtcCreateProgram failed ({rc})")
    opts = [f"--gpu-architecture=compute_{arch}", "--std=c++17", "-default-device",
            "--extra-device-vectorization"]
    copts = (ctypes.c_char_p * len(opts))(*[o.encode() for o in opts])
    rc = lib.nvrtcCompileProgram(prog, len(opts), copts)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    log = log.value.decode(errors="replace").strip()
    if rc != 0:
        raise RuntimeError(f"{name} (compute_{arch}): NVRTC error\n{log}")
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetPTX(prog, ptx)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    return ptx.value.decode(), log


def ptxas(tools: pathlib.Path, ptx_path: pathlib.Path, arch: str) -> str:
    exe = tools / "nvidia/cu13/bin/ptxas"
    exe.chmod(0o755)
    out = subprocess.run(
        [str(exe), "-v", "--warn-on-spills", "--warning-as-error", f"--gpu-name=sm_{arch}",
         str(ptx_path), "-o", str(ptx_path.with_suffix(".cubin"))],
        capture_output=True, text=True)
    text = (out.stdout + out.stderr).strip()
    if out.returncode != 0:
        raise RuntimeError(f"{ptx_path.name} (sm_{arch}): ptxas failed\n{text}")
    return text


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", required=True, type=pathlib.Path)
    ap.add_argument("--src", default="cuda-kernels", type=pathlib.Path)
    ap.add_argument("--out", default="target/cuda-check", type=pathlib.Path)
    a = ap.parse_args()
    sources = sorted(a.src.glob("*.cu"))
    if not sources:
        print(f"check-kernels: no .cu files in {a.src}")
        return 0
    headers = {h.name: h.read_text() for h in sorted(a.src.glob("*.cuh"))}
    a.out.mkdir(parents=True, exist_ok=True)
    lib = nvrtc(a.tools)
    rows, failed = [], False
    for src in sources:
        for arch in ARCHS:
            try:
                ptx, log = compile_ptx(lib, src.name, src.read_text(), headers, arch)
                if log and "warning" in log.lower():
                    raise RuntimeError(f"{src.name} (compute_{arch}): NVRTC warnings\n{log}")
                ptx_path = a.out / f"{src.stem}.sm_{arch}.ptx"
                ptx_path.write_text(ptx)
                report = ptxas(a.tools, ptx_path, arch)
                spills = [int(x) for x in re.findall(r"(\d+) bytes spill (?:stores|loads)", report)]
                if any(spills):
                    raise RuntimeError(f"{src.name} (sm_{arch}): register spills\n{report}")
                for fn, regs in re.findall(r"Compiling entry function '(\w+)'.*?Used (\d+) registers", report, re.S):
                    rows.append((src.name, f"sm_{arch}", fn, regs))
            except RuntimeError as e:
                failed = True
                print(f"check-kernels: FAILED {e}", file=sys.stderr)
    print(f"{'source':<20} {'arch':<6} {'registers':>9}  entry")
    for s, arch, fn, regs in rows:
        print(f"{s:<20} {arch:<6} {regs:>9}  {fn}")
    print("check-kernels: " + ("FAILED" if failed else f"ok ({len(sources)} source(s) x {len(ARCHS)} archs, no warnings, no spills)"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
