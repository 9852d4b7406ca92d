//! Build script: embeds the official Socket.IO browser client bundle.
//!
//! The client is pinned in `client/package.json` + `client/package-lock.json`.
//! Its `dist/` directory is looked up, in this order:
//!
//! 1. `$SOCKETLET_CLIENT_DIST`: a `dist` directory given explicitly (an
//!    absolute path, or one relative to this crate's directory). If it is set
//!    but does not hold the bundle, the build fails: it was asked for.
//! 2. `client/node_modules/socket.io-client/dist` (after
//!    `npm ci --prefix crates/cli/client`).
//! 3. Unless `$SOCKETLET_NO_NPM` is set: `npm ci` from the committed lockfile,
//!    run inside `$OUT_DIR/client` (never touching the source tree), bounded
//!    by `$SOCKETLET_NPM_TIMEOUT_SECS` (default 120 s). A failure is a
//!    warning, not an error.
//!
//! When nothing is found the build still succeeds: the generated constants
//! are `None`, the binary answers 404 for the bundle and the demo page says
//! how to get it.
//!
//! Output: `$OUT_DIR/client_bundle.rs`, included by `src/assets.rs`.
//!
//! It also embeds the official Socket.IO Admin UI, pinned in `admin-ui/package.json` +
//! `admin-ui/package-lock.json` (`@socket.io/admin-ui`'s `ui/dist`, and `@mdi/font`'s icon font
//! that the UI's page would otherwise load from a CDN), looked up the same way:
//! `$SOCKETLET_ADMIN_UI_MODULES` (a `node_modules` directory holding both packages), then
//! `admin-ui/node_modules` (after `npm ci --prefix crates/cli/admin-ui`), then `npm ci` inside
//! `$OUT_DIR/admin-ui` unless `$SOCKETLET_NO_NPM` is set. The page is embedded with its links to
//! other sites removed (Google's fonts: the browser's sans-serif stands in) or pointed at the
//! embedded icon font. Source maps are left out. Without them the build still succeeds; the
//! binary then answers the UI's path with a page that says how to embed it. Output:
//! `$OUT_DIR/admin_ui.rs`, included by `src/admin_ui.rs`.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const ENV_DIST: &str = "SOCKETLET_CLIENT_DIST";
const ENV_NO_NPM: &str = "SOCKETLET_NO_NPM";
const ENV_NPM_TIMEOUT: &str = "SOCKETLET_NPM_TIMEOUT_SECS";
const ENV_ADMIN_UI_MODULES: &str = "SOCKETLET_ADMIN_UI_MODULES";
const DEFAULT_NPM_TIMEOUT_SECS: u64 = 120;

/// The bundle files, in the order of the generated constants.
const FILES: [(&str, &str, bool); 4] = [
    // (file name, generated constant, required for a dist dir to qualify)
    ("socket.io.js", "BUNDLE_JS", true),
    ("socket.io.min.js", "BUNDLE_MIN_JS", true),
    ("socket.io.js.map", "BUNDLE_JS_MAP", false),
    ("socket.io.min.js.map", "BUNDLE_MIN_JS_MAP", false),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed={ENV_DIST}");
    println!("cargo:rerun-if-env-changed={ENV_NO_NPM}");
    println!("cargo:rerun-if-env-changed={ENV_NPM_TIMEOUT}");
    println!("cargo:rerun-if-env-changed={ENV_ADMIN_UI_MODULES}");

    if let Err(message) = run().and_then(|()| admin_ui::run()) {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env_var("OUT_DIR")?);
    let client_dir = manifest_dir.join("client");
    let local_dist = client_dir
        .join("node_modules")
        .join("socket.io-client")
        .join("dist");

    println!(
        "cargo:rerun-if-changed={}",
        client_dir.join("package.json").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        client_dir.join("package-lock.json").display()
    );
    // Watching the whole `client/` directory (node_modules included) makes a
    // later `npm ci --prefix crates/cli/client`, or deleting node_modules,
    // trigger a rebuild. Only existing paths are emitted: a missing one would
    // make Cargo rerun this script on every build.
    if client_dir.is_dir() {
        println!("cargo:rerun-if-changed={}", client_dir.display());
    }
    if local_dist.is_dir() {
        println!("cargo:rerun-if-changed={}", local_dist.display());
    }

    let found = locate(&manifest_dir, &client_dir, &local_dist, &out_dir)?;
    let generated = match &found {
        Ok(dist) => {
            let version = bundle_version(dist);
            check_lockfile_pin(&client_dir, version.as_deref());
            generate(Some(dist), version.as_deref())?
        }
        Err(reason) => {
            println!("cargo:warning=Socket.IO client bundle not embedded: {reason}");
            println!(
                "cargo:warning=/socket.io/socket.io.js will answer 404; to embed it run \
                 `npm ci --prefix crates/cli/client`, then rebuild"
            );
            generate(None, None)?
        }
    };
    let target = out_dir.join("client_bundle.rs");
    fs::write(&target, generated).map_err(|e| format!("writing {}: {e}", target.display()))
}

/// Finds a dist directory. The outer error fails the build; the inner one is
/// the reason no bundle gets embedded.
fn locate(
    manifest_dir: &Path,
    client_dir: &Path,
    local_dist: &Path,
    out_dir: &Path,
) -> Result<Result<PathBuf, String>, String> {
    if let Some(dir) = env::var_os(ENV_DIST) {
        let dir = manifest_dir.join(dir);
        if dir.is_dir() {
            println!("cargo:rerun-if-changed={}", dir.display());
        }
        return match missing_files(&dir) {
            None => Ok(Ok(dir)),
            Some(missing) => Err(format!(
                "{ENV_DIST}={} does not contain {missing}",
                dir.display()
            )),
        };
    }

    if missing_files(local_dist).is_none() {
        return Ok(Ok(local_dist.to_path_buf()));
    }

    if env::var_os(ENV_NO_NPM).is_some() {
        return Ok(Err(format!(
            "{} has no bundle and {ENV_NO_NPM} is set",
            local_dist.display()
        )));
    }

    let npm_dir = out_dir.join("client");
    let npm_dist = npm_dir
        .join("node_modules")
        .join("socket.io-client")
        .join("dist");
    match npm_install(client_dir, &npm_dir) {
        Ok(()) => match missing_files(&npm_dist) {
            None => Ok(Ok(npm_dist)),
            Some(missing) => Ok(Err(format!(
                "`npm ci` succeeded but {} lacks {missing}",
                npm_dist.display()
            ))),
        },
        Err(reason) => Ok(Err(reason)),
    }
}

/// Names the first required bundle file missing from `dir`, if any.
fn missing_files(dir: &Path) -> Option<&'static str> {
    FILES
        .iter()
        .find(|(name, _, required)| *required && !dir.join(name).is_file())
        .map(|(name, _, _)| *name)
}

/// Installs the pinned client into `npm_dir` (a copy of the manifest and
/// lockfile) with `npm ci`, unless an install from the same lockfile is
/// already there.
fn npm_install(client_dir: &Path, npm_dir: &Path) -> Result<(), String> {
    npm_ci(
        client_dir,
        npm_dir,
        &[],
        "the Socket.IO client",
        &|modules| missing_files(&modules.join("socket.io-client").join("dist")).is_none(),
    )
}

/// `npm ci` of the package in `package_dir` (its manifest and lockfile copied into `npm_dir`),
/// with `extra` arguments, unless an install from the same lockfile is there already
/// (`installed` judges its `node_modules`). `what` names it in warnings.
fn npm_ci(
    package_dir: &Path,
    npm_dir: &Path,
    extra: &[&str],
    what: &str,
    installed: &dyn Fn(&Path) -> bool,
) -> Result<(), String> {
    let manifest = read(&package_dir.join("package.json"))?;
    let lockfile = read(&package_dir.join("package-lock.json"))?;

    let up_to_date = fs::read(npm_dir.join("package.json")).ok().as_ref() == Some(&manifest)
        && fs::read(npm_dir.join("package-lock.json")).ok().as_ref() == Some(&lockfile)
        && installed(&npm_dir.join("node_modules"));
    if up_to_date {
        return Ok(());
    }

    fs::create_dir_all(npm_dir).map_err(|e| format!("creating {}: {e}", npm_dir.display()))?;
    for (name, bytes) in [
        ("package.json", &manifest),
        ("package-lock.json", &lockfile),
    ] {
        let path = npm_dir.join(name);
        fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }

    let timeout = env::var(ENV_NPM_TIMEOUT)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_NPM_TIMEOUT_SECS);
    let log_path = npm_dir.join("npm-ci.log");
    let result = run_bounded(
        Command::new(if cfg!(windows) { "npm.cmd" } else { "npm" })
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--ignore-scripts",
                "--prefer-offline",
                // Offline, the default retries (with back-off) take > 1 min to fail.
                "--fetch-retries=1",
            ])
            .args(extra)
            .env("npm_config_update_notifier", "false")
            .current_dir(npm_dir),
        &log_path,
        Duration::from_secs(timeout),
    );
    result.map_err(|reason| {
        println!("cargo:warning=`npm ci` for {what} failed: {reason}");
        if let Ok(log) = fs::read_to_string(&log_path) {
            let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
            for line in &lines[lines.len().saturating_sub(8)..] {
                println!("cargo:warning=  npm: {line}");
            }
        }
        "`npm ci` failed (see above)".to_string()
    })
}

/// Runs `command` with its output in `log_path`, killing it after `timeout`.
fn run_bounded(command: &mut Command, log_path: &Path, timeout: Duration) -> Result<(), String> {
    let log = fs::File::create(log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    // npm's output must not reach our stdout, where Cargo reads directives.
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => "npm is not on PATH".to_string(),
            _ => format!("cannot start npm: {e}"),
        })?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!(
                    "npm ci exited with {status} (log: {})",
                    log_path.display()
                ))
            }
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "npm ci timed out after {} s (set {ENV_NPM_TIMEOUT} to change)",
                    timeout.as_secs()
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("waiting for npm: {e}")),
        }
    }
}

/// The bundle version: from `socket.io-client`'s package.json next to the
/// dist directory, else from the banner at the top of `socket.io.js`.
fn bundle_version(dist: &Path) -> Option<String> {
    let from_package = dist
        .parent()
        .and_then(|pkg| fs::read_to_string(pkg.join("package.json")).ok())
        .filter(|json| json_string_field(json, "name").as_deref() == Some("socket.io-client"))
        .and_then(|json| json_string_field(&json, "version"));
    let version = from_package.or_else(|| {
        let js = fs::read(dist.join("socket.io.js")).ok()?;
        let head = String::from_utf8_lossy(&js[..js.len().min(512)]).into_owned();
        let start = head.find("Socket.IO v")? + "Socket.IO v".len();
        let rest = &head[start..];
        Some(rest[..rest.find(char::is_whitespace)?].to_string())
    })?;
    let plausible = !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'));
    plausible.then_some(version)
}

/// Warns when the embedded version differs from the one the lockfile pins
/// (typically a stale `client/node_modules`).
fn check_lockfile_pin(client_dir: &Path, embedded: Option<&str>) {
    let Ok(lock) = fs::read_to_string(client_dir.join("package-lock.json")) else {
        return;
    };
    let Some(at) = lock.find("\"node_modules/socket.io-client\"") else {
        return;
    };
    let pinned = json_string_field(&lock[at..], "version");
    if let (Some(pinned), Some(embedded)) = (pinned, embedded) {
        if pinned != embedded {
            println!(
                "cargo:warning=embedding socket.io-client {embedded}, but the lockfile pins \
                 {pinned}; run `npm ci --prefix crates/cli/client`"
            );
        }
    }
}

/// The value of the first `"key": "value"` pair in `json`. Enough for the
/// flat, well-formed npm manifests read here; no JSON dependency needed.
fn json_string_field(json: &str, key: &str) -> Option<String> {
    let needle = format!("\"{key}\"");
    let mut search = json;
    while let Some(pos) = search.find(&needle) {
        let after = search[pos + needle.len()..].trim_start();
        if let Some(value) = after.strip_prefix(':') {
            let value = value.trim_start().strip_prefix('"')?;
            return Some(value[..value.find('"')?].to_string());
        }
        search = &search[pos + needle.len()..];
    }
    None
}

fn generate(dist: Option<&Path>, version: Option<&str>) -> Result<String, String> {
    let mut out = String::from(
        "// @generated by crates/cli/build.rs: the embedded Socket.IO client bundle.\n\n",
    );
    for (name, constant, _) in FILES {
        let path = dist.map(|d| d.join(name)).filter(|p| p.is_file());
        let value = match path {
            Some(path) => {
                let path = path.canonicalize().unwrap_or(path);
                let path = path
                    .to_str()
                    .ok_or_else(|| format!("non UTF-8 path: {}", path.display()))?;
                println!("cargo:rerun-if-changed={path}");
                format!("Some(include_bytes!({path:?}))")
            }
            None => "None".to_string(),
        };
        writeln!(
            out,
            "/// `{name}` from the client's `dist/`, if embedded.\n\
             const {constant}: Option<&[u8]> = {value};"
        )
        .map_err(|e| e.to_string())?;
    }
    let version = match version {
        Some(v) => format!("Some({v:?})"),
        None => "None".to_string(),
    };
    writeln!(
        out,
        "/// The embedded bundle's `socket.io-client` version.\n\
         const BUNDLE_VERSION: Option<&str> = {version};"
    )
    .map_err(|e| e.to_string())?;
    Ok(out)
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn env_var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|e| format!("{name}: {e}"))
}

/// The Admin UI's files (see the header).
mod admin_ui {
    use super::*;

    /// The UI's package, under a `node_modules` directory.
    const UI_PACKAGE: &str = "@socket.io/admin-ui";
    /// The icon font's package.
    const MDI_PACKAGE: &str = "@mdi/font";
    /// The icon font's files served (under `mdi/`): the style sheet and the formats every
    /// browser of the UI's era reads. Its other formats (eot, ttf) are left out.
    const MDI_FILES: [&str; 3] = [
        "css/materialdesignicons.min.css",
        "fonts/materialdesignicons-webfont.woff2",
        "fonts/materialdesignicons-webfont.woff",
    ];

    fn ui_dist(modules: &Path) -> PathBuf {
        modules.join(UI_PACKAGE).join("ui").join("dist")
    }

    /// Whether `modules` holds both packages.
    fn complete(modules: &Path) -> bool {
        ui_dist(modules).join("index.html").is_file()
            && MDI_FILES
                .iter()
                .all(|f| modules.join(MDI_PACKAGE).join(f).is_file())
    }

    pub(super) fn run() -> Result<(), String> {
        let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR")?);
        let out_dir = PathBuf::from(env_var("OUT_DIR")?);
        let package_dir = manifest_dir.join("admin-ui");
        let local = package_dir.join("node_modules");
        for name in ["package.json", "package-lock.json"] {
            println!(
                "cargo:rerun-if-changed={}",
                package_dir.join(name).display()
            );
        }
        if package_dir.is_dir() {
            println!("cargo:rerun-if-changed={}", package_dir.display());
        }
        let found = if let Some(dir) = env::var_os(ENV_ADMIN_UI_MODULES) {
            let dir = manifest_dir.join(dir);
            if !complete(&dir) {
                return Err(format!(
                    "{ENV_ADMIN_UI_MODULES}={} does not hold {UI_PACKAGE} and {MDI_PACKAGE}",
                    dir.display()
                ));
            }
            Ok(dir)
        } else if complete(&local) {
            Ok(local)
        } else if env::var_os(ENV_NO_NPM).is_some() {
            Err(format!(
                "{} lacks it and {ENV_NO_NPM} is set",
                local.display()
            ))
        } else {
            let npm_dir = out_dir.join("admin-ui");
            // Without the UI's peer dependency (a whole socket.io server).
            npm_ci(
                &package_dir,
                &npm_dir,
                &["--omit=peer"],
                "the Admin UI",
                &complete,
            )
            .and_then(|()| {
                let modules = npm_dir.join("node_modules");
                if complete(&modules) {
                    Ok(modules)
                } else {
                    Err("`npm ci` succeeded but the packages are incomplete".into())
                }
            })
        };
        let generated = match found {
            Ok(modules) => generate(&modules, &out_dir)?,
            Err(reason) => {
                println!("cargo:warning=Socket.IO Admin UI not embedded: {reason}");
                println!(
                    "cargo:warning=--admin-ui will serve a page that says so; to embed it run \
                     `npm ci --prefix crates/cli/admin-ui`, then rebuild"
                );
                "// @generated by crates/cli/build.rs: no Admin UI embedded.\n\
                 const ADMIN_UI_FILES: &[(&str, &[u8])] = &[];\n\
                 const ADMIN_UI_VERSION: Option<&str> = None;\n"
                    .to_owned()
            }
        };
        let target = out_dir.join("admin_ui.rs");
        fs::write(&target, generated).map_err(|e| format!("writing {}: {e}", target.display()))
    }

    /// Every file under `dir` (recursively), as paths relative to it with `/`, sorted.
    fn files(dir: &Path, under: &str, out: &mut Vec<(String, PathBuf)>) -> Result<(), String> {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let rel = format!("{under}{name}");
            if path.is_dir() {
                files(&path, &format!("{rel}/"), out)?;
            } else if !name.ends_with(".map") {
                out.push((rel, path));
            }
        }
        Ok(())
    }

    /// The page with its links to other sites removed, or pointed at the embedded icon font.
    /// (A `<link ...>` tag is one piece of text without `>` inside: the page is a build output.)
    fn local_page(html: &str) -> String {
        let mut out = String::with_capacity(html.len());
        let mut rest = html;
        while let Some(start) = rest.find("<link") {
            out.push_str(&rest[..start]);
            let Some(len) = rest[start..].find('>') else {
                rest = &rest[start..];
                break;
            };
            let tag = &rest[start..start + len + 1];
            rest = &rest[start + len + 1..];
            let external = tag.contains("href=\"https://")
                || tag.contains("href=\"http://")
                || tag.contains("href=\"//");
            if !external {
                out.push_str(tag);
            } else if tag.contains("materialdesignicons") {
                out.push_str(
                    "<link rel=\"stylesheet\" href=\"mdi/css/materialdesignicons.min.css\">",
                );
            }
            // Any other link to another site (the Roboto font) is dropped.
        }
        out.push_str(rest);
        out
    }

    fn generate(modules: &Path, out_dir: &Path) -> Result<String, String> {
        let dist = ui_dist(modules);
        println!("cargo:rerun-if-changed={}", dist.display());
        let mut list = Vec::new();
        files(&dist, "", &mut list)?;
        for f in MDI_FILES {
            list.push((format!("mdi/{f}"), modules.join(MDI_PACKAGE).join(f)));
        }
        let index = read(&dist.join("index.html"))?;
        let page = local_page(&String::from_utf8_lossy(&index));
        for external in ["http://", "https://", "href=\"//", "src=\"//"] {
            if page.contains(external) {
                println!(
                    "cargo:warning=the Admin UI's page still refers to another site ({external})"
                );
            }
        }
        let page_path = out_dir.join("admin-ui-index.html");
        fs::write(&page_path, page).map_err(|e| format!("writing {}: {e}", page_path.display()))?;
        let version = fs::read_to_string(modules.join(UI_PACKAGE).join("package.json"))
            .ok()
            .and_then(|json| json_string_field(&json, "version"));
        let mut out = String::from(
            "// @generated by crates/cli/build.rs: the embedded Socket.IO Admin UI.\n\n\
             /// The UI's files: their path under the UI's URL, and their bytes.\n\
             const ADMIN_UI_FILES: &[(&str, &[u8])] = &[\n",
        );
        for (rel, path) in list {
            let path = if rel == "index.html" {
                page_path.clone()
            } else {
                path.canonicalize().unwrap_or(path)
            };
            let path = path
                .to_str()
                .ok_or_else(|| format!("non UTF-8 path: {}", path.display()))?
                .to_owned();
            println!("cargo:rerun-if-changed={path}");
            writeln!(out, "    ({rel:?}, include_bytes!({path:?})),").map_err(|e| e.to_string())?;
        }
        out.push_str("];\n");
        let version = match version {
            Some(v) => format!("Some({v:?})"),
            None => "None".to_owned(),
        };
        writeln!(
            out,
            "/// The embedded `@socket.io/admin-ui` version.\n\
             const ADMIN_UI_VERSION: Option<&str> = {version};"
        )
        .map_err(|e| e.to_string())?;
        Ok(out)
    }
}
