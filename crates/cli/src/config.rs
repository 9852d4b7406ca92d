//! Where the binary's settings come from: flags, environment variables, a TOML file
//! (`--config socketlet.toml`) and defaults, in that order of precedence.
//!
//! Every flag is a key of the file, named as the flag's long name with `_` for `-`, lists in
//! the plural where the flag repeats (`cors_origins = ["https://a.example"]` for
//! `--cors-origin`): the keys are the fields of [`crate::Args`], so a new flag is a new key
//! without more code. The file is read as flags would be: a value the command line or the
//! environment sets is left alone, the others are passed to clap as if typed, and clap checks
//! them as it checks flags. An unknown key, or a value of the wrong type, is an error that names
//! the file and the key.
//!
//! `--check-config` prints the effective configuration (each value with where it came from,
//! secrets masked) and exits; `--print-options` prints the Markdown table of options that the
//! README holds (a test keeps the two equal).

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;

/// Arguments that are not settings: they are neither read from the file nor printed.
const NOT_SETTINGS: &[&str] = &["help", "version", "config", "check_config", "print_options"];

/// The settings, read from the command line, the environment and the file `--config` names.
pub struct Loaded {
    /// The settings.
    pub args: crate::Args,
    /// Where each came from, for `--check-config`.
    pub matches: ArgMatches,
    /// The keys the file set (and nothing with more precedence did).
    pub from_file: Vec<String>,
}

/// Parses `argv` (the program name first) and the file it names. Clap's own errors (`--help`,
/// a bad flag) are returned as [`clap::Error`] so that the caller prints them as clap does.
pub fn load(argv: Vec<OsString>) -> Result<Loaded, LoadError> {
    let command = crate::Args::command();
    let first = command
        .clone()
        .try_get_matches_from(argv.iter())
        .map_err(LoadError::Clap)?;
    let Some(path) = first.get_one::<std::path::PathBuf>("config").cloned() else {
        let args = crate::Args::from_arg_matches(&first).map_err(LoadError::Clap)?;
        return Ok(Loaded {
            args,
            matches: first,
            from_file: Vec::new(),
        });
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| LoadError::File(format!("cannot read {} (--config): {e}", path.display())))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| LoadError::File(format!("{}: {e}", path.display())))?;
    let mut table = table;
    let namespaces = match table.remove("namespaces") {
        Some(value) => namespaces(value)
            .map_err(|why| LoadError::File(format!("{}: `namespaces`{why}", path.display())))?,
        None => BTreeMap::new(),
    };
    let mut full = argv.clone();
    let mut from_file = Vec::new();
    for (key, value) in &table {
        let arg = setting(&command, key).ok_or_else(|| {
            LoadError::File(format!(
                "{}: unknown key `{key}` (`socketlet --print-options` lists them)",
                path.display()
            ))
        })?;
        let tokens = tokens(arg, value)
            .map_err(|why| LoadError::File(format!("{}: `{key}`: {why}", path.display())))?;
        // Checked alone, so that a bad value is reported against its key.
        let mut alone = vec![argv[0].clone()];
        alone.extend(tokens.iter().cloned());
        if let Err(e) = command.clone().try_get_matches_from(alone) {
            return Err(LoadError::File(format!(
                "{}: `{key}`: {}",
                path.display(),
                clap_message(&e)
            )));
        }
        if matches!(
            first.value_source(arg.get_id().as_str()),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        ) {
            continue;
        }
        full.extend(tokens);
        from_file.push(key.clone());
    }
    let matches = command
        .try_get_matches_from(full)
        .map_err(|e| LoadError::File(format!("{}: {}", path.display(), clap_message(&e))))?;
    let mut args = crate::Args::from_arg_matches(&matches).map_err(LoadError::Clap)?;
    args.namespaces = namespaces;
    Ok(Loaded {
        args,
        matches,
        from_file,
    })
}

/// The hooks of one namespace, from the file's `[namespaces."/name"]` table: each key replaces
/// the flag of the same name for that namespace (an empty URL: no such hook there).
#[derive(Debug, Clone, Default, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamespaceHooks {
    /// `--hook-connect` for this namespace.
    pub hook_connect: Option<String>,
    /// `--hook-event` for this namespace.
    pub hook_event: Option<String>,
    /// `--hook-events` for this namespace.
    pub hook_events: Option<Vec<String>>,
    /// `--hook-disconnect` for this namespace.
    pub hook_disconnect: Option<String>,
    /// `--hook-timeout` for this namespace.
    pub hook_timeout: Option<u64>,
    /// `--hook-header` for this namespace.
    pub hook_headers: Option<Vec<String>>,
    /// `--hook-forward-cookie` for this namespace.
    pub hook_forward_cookie: Option<bool>,
}

/// `namespaces = { "/chat" = { hook_connect = "..." } }`, checked.
fn namespaces(value: toml::Value) -> Result<BTreeMap<String, NamespaceHooks>, String> {
    let toml::Value::Table(table) = value else {
        return Err(": expected a table of namespaces, like [namespaces.\"/chat\"]".into());
    };
    let mut out = BTreeMap::new();
    for (name, hooks) in table {
        if !name.starts_with('/') {
            return Err(format!(": `{name}`: a namespace name starts with /"));
        }
        let hooks: NamespaceHooks = hooks
            .try_into()
            .map_err(|e: toml::de::Error| format!(".\"{name}\": {}", e.message()))?;
        for url in [
            &hooks.hook_connect,
            &hooks.hook_event,
            &hooks.hook_disconnect,
        ]
        .into_iter()
        .flatten()
        .filter(|u| !u.is_empty())
        {
            url.parse::<http::Uri>()
                .map_err(|e| format!(".\"{name}\": `{url}` is not a URL: {e}"))?;
        }
        for header in hooks.hook_headers.iter().flatten() {
            http::HeaderName::try_from(header.as_str())
                .map_err(|e| format!(".\"{name}\": `{header}`: {e}"))?;
        }
        out.insert(name, hooks);
    }
    Ok(out)
}

/// Why the settings could not be read.
#[derive(Debug)]
pub enum LoadError {
    /// Clap's (a bad flag, `--help`, `--version`): printed and exited on as clap does.
    Clap(clap::Error),
    /// The file's, as one sentence naming the file and the key.
    File(String),
}

/// Clap's error text without its `error: ` prefix and usage lines.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// The setting `key` names, if any.
fn setting<'a>(command: &'a Command, key: &str) -> Option<&'a Arg> {
    command
        .get_arguments()
        .find(|a| a.get_id().as_str() == key && !NOT_SETTINGS.contains(&key) && !a.is_hide_set())
}

/// The flags a file value stands for.
fn tokens(arg: &Arg, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let Some(long) = arg.get_long() else {
        return Err("not a setting".into());
    };
    let flag = format!("--{long}");
    match arg.get_action() {
        ArgAction::SetTrue => match value {
            toml::Value::Boolean(true) => Ok(vec![flag.into()]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            _ => Err("expected true or false".into()),
        },
        ArgAction::Append => {
            let items: Vec<&toml::Value> = match value {
                toml::Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            items
                .into_iter()
                .map(|v| scalar(v).map(|v| format!("{flag}={v}").into()))
                .collect()
        }
        _ => Ok(vec![format!("{flag}={}", scalar(value)?).into()]),
    }
}

/// A scalar TOML value as a flag's text.
fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Array(_) => Err("expected one value, not a list".into()),
        toml::Value::Table(_) => Err("expected a value, not a table".into()),
        toml::Value::Datetime(_) => Err("expected a value, not a date".into()),
    }
}

/// Whether `arg` holds a secret: its value is never printed.
fn secret(arg: &Arg) -> bool {
    arg.is_hide_env_values_set()
}

/// `scheme://user:password@host...` with the password masked.
fn mask_url_password(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:****@{host}{tail}")
        }
        Some((userinfo, host)) if !userinfo.is_empty() && scheme.starts_with("redis") => {
            // redis://password@host: Redis reads a lone userinfo as the password.
            format!("{scheme}://****@{host}{tail}")
        }
        _ => value.to_owned(),
    }
}

/// A TOML string literal.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// The effective configuration as TOML, each value with where it came from; secrets masked.
pub fn effective(loaded: &Loaded) -> String {
    let command = crate::Args::command();
    let mut out = String::from(
        "# socketlet's effective configuration (flag > environment > file > default)\n",
    );
    for arg in settings(&command) {
        let id = arg.get_id().as_str();
        let source = if loaded.from_file.iter().any(|k| k == id) {
            "file"
        } else {
            match loaded.matches.value_source(id) {
                Some(ValueSource::CommandLine) => "flag",
                Some(ValueSource::EnvVariable) => "environment",
                Some(ValueSource::DefaultValue) => "default",
                _ => "default",
            }
        };
        let raw: Vec<String> = loaded
            .matches
            .get_raw(id)
            .map(|vals| {
                vals.map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let shown: Vec<String> = raw
            .iter()
            .map(|v| {
                if secret(arg) {
                    quoted("****")
                } else {
                    typed(arg, &mask_url_password(v))
                }
            })
            .collect();
        let value = match arg.get_action() {
            ArgAction::SetTrue => shown.first().cloned().unwrap_or_else(|| "false".into()),
            ArgAction::Append => format!("[{}]", shown.join(", ")),
            _ => match shown.first() {
                Some(v) => v.clone(),
                None => {
                    let _ = writeln!(out, "# {id}: not set  # {source}");
                    continue;
                }
            },
        };
        let _ = writeln!(out, "{id} = {value}  # {source}");
    }
    for (name, hooks) in &loaded.args.namespaces {
        let _ = writeln!(out, "\n[namespaces.{}]  # file", quoted(name));
        let urls = [
            ("hook_connect", &hooks.hook_connect),
            ("hook_event", &hooks.hook_event),
            ("hook_disconnect", &hooks.hook_disconnect),
        ];
        for (key, url) in urls {
            if let Some(url) = url {
                let _ = writeln!(out, "{key} = {}", quoted(&mask_url_password(url)));
            }
        }
        if let Some(events) = &hooks.hook_events {
            let list: Vec<String> = events.iter().map(|e| quoted(e)).collect();
            let _ = writeln!(out, "hook_events = [{}]", list.join(", "));
        }
        if let Some(ms) = hooks.hook_timeout {
            let _ = writeln!(out, "hook_timeout = {ms}");
        }
        if let Some(headers) = &hooks.hook_headers {
            let list: Vec<String> = headers.iter().map(|h| quoted(h)).collect();
            let _ = writeln!(out, "hook_headers = [{}]", list.join(", "));
        }
        if let Some(forward) = hooks.hook_forward_cookie {
            let _ = writeln!(out, "hook_forward_cookie = {forward}");
        }
    }
    out
}

/// A raw value as TOML: numbers and booleans bare, the rest quoted.
fn typed(arg: &Arg, raw: &str) -> String {
    let numeric = raw.parse::<i64>().is_ok() || raw.parse::<f64>().is_ok_and(f64::is_finite);
    let boolean =
        matches!(arg.get_action(), ArgAction::SetTrue) && (raw == "true" || raw == "false");
    if numeric || boolean {
        raw.to_owned()
    } else {
        quoted(raw)
    }
}

/// The settings, in the order `--help` lists them.
fn settings(command: &Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|a| {
        !NOT_SETTINGS.contains(&a.get_id().as_str()) && !a.is_hide_set() && a.get_long().is_some()
    })
}

/// The Markdown table of every option: file key, flag, environment variable, default, what it
/// does. The README's "Options" section is this table.
pub fn options_table() -> String {
    let command = crate::Args::command();
    let mut out = String::from(
        "| file key | flag | environment | default | what it does |\n| --- | --- | --- | --- | --- |\n",
    );
    for arg in settings(&command) {
        let id = arg.get_id().as_str();
        let long = arg.get_long().unwrap_or_default();
        let env = arg
            .get_env()
            .map(|e| format!("`{}`", e.to_string_lossy()))
            .unwrap_or_else(|| "-".into());
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let default = match arg.get_action() {
            ArgAction::SetTrue => "`false`".to_owned(),
            _ if defaults.is_empty() => "-".to_owned(),
            _ => format!("`{}`", defaults.join(",")),
        };
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(|h| h.to_string())
            .unwrap_or_default()
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .replace('\n', " ")
            .replace('|', "\\|");
        let _ = writeln!(out, "| `{id}` | `--{long}` | {env} | {default} | {help} |");
    }
    out
}

/// The README's options section must be [`options_table`]'s output, between these markers.
#[cfg(test)]
const README_START: &str = "<!-- options:start (socketlet --print-options) -->";
/// See [`README_START`].
#[cfg(test)]
const README_END: &str = "<!-- options:end -->";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("socketlet")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    fn file(text: &str) -> tempfile_lite::File {
        tempfile_lite::File::new(text)
    }

    /// A file removed when dropped (no crate for so little).
    mod tempfile_lite {
        pub struct File(pub std::path::PathBuf);
        impl File {
            pub fn new(text: &str) -> File {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let path = std::env::temp_dir().join(format!(
                    "socketlet-config-test-{}-{}.toml",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::write(&path, text).unwrap();
                File(path)
            }
            pub fn arg(&self) -> String {
                self.0.display().to_string()
            }
        }
        impl Drop for File {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn error(args: &[&str]) -> String {
        match load(argv(args)) {
            Err(LoadError::File(e)) => e,
            Err(LoadError::Clap(e)) => panic!("clap error: {e}"),
            Ok(_) => panic!("loaded"),
        }
    }

    #[test]
    fn a_file_sets_what_flags_do_not() {
        let f = file(
            r#"
ping_interval = 10000
cors_origins = ["https://a.example", "https://b.example"]
cookie = true
parser = "msgpack"
vm_time_scale = 0.5
"#,
        );
        let loaded = load(argv(&["--config", &f.arg(), "--ping-interval", "7000"])).unwrap();
        assert_eq!(loaded.args.ping_interval, 7000, "the flag wins");
        assert_eq!(
            loaded.args.cors_origins,
            ["https://a.example", "https://b.example"]
        );
        assert!(loaded.args.cookie);
        assert_eq!(loaded.args.parser, crate::ParserKind::Msgpack);
        assert_eq!(loaded.args.vm_time_scale, 0.5);
        assert_eq!(loaded.args.ping_timeout, 20_000, "the default stays");
        let shown = effective(&loaded);
        assert!(shown.contains("ping_interval = 7000  # flag\n"), "{shown}");
        assert!(
            shown.contains(
                "cors_origins = [\"https://a.example\", \"https://b.example\"]  # file\n"
            ),
            "{shown}"
        );
        assert!(
            shown.contains("ping_timeout = 20000  # default\n"),
            "{shown}"
        );
        assert!(shown.contains("cookie = true  # file\n"), "{shown}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let f = file("ping_intervall = 1\n");
        let e = error(&["--config", &f.arg()]);
        assert!(
            e.ends_with(": unknown key `ping_intervall` (`socketlet --print-options` lists them)"),
            "{e}"
        );
        assert!(e.starts_with(&f.arg()), "{e}");
        let f = file("ping_interval = \"soon\"\n");
        let e = error(&["--config", &f.arg()]);
        assert!(e.contains("`ping_interval`: invalid value 'soon'"), "{e}");
        let f = file("cookie = \"yes\"\n");
        assert!(error(&["--config", &f.arg()]).ends_with("`cookie`: expected true or false"));
        let f = file("addr = [\"127.0.0.1:1\"]\n");
        assert!(error(&["--config", &f.arg()]).contains("expected one value, not a list"));
        let f = file("[redis]\nurl = \"redis://x\"\n");
        assert!(error(&["--config", &f.arg()]).ends_with("`redis`: expected a value, not a table"));
        let f = file("[server]\naddr = \"127.0.0.1:1\"\n");
        assert!(error(&["--config", &f.arg()]).contains("unknown key `server`"));
        let f = file("config = \"other.toml\"\n");
        assert!(error(&["--config", &f.arg()]).contains("unknown key `config`"));
        let f = file("ping_interval = \n");
        assert!(error(&["--config", &f.arg()]).contains("TOML parse error"));
        let e = error(&["--config", "/nonexistent/socketlet.toml"]);
        assert!(
            e.starts_with("cannot read /nonexistent/socketlet.toml (--config): "),
            "{e}"
        );
    }

    #[test]
    fn namespaces_have_hooks_of_their_own() {
        let f = file(
            r#"
hook_connect = "http://127.0.0.1:8000/connect"

[namespaces."/chat"]
hook_connect = "http://127.0.0.1:8000/chat/connect"
hook_events = ["say"]

[namespaces."/public"]
hook_connect = ""
"#,
        );
        let loaded = load(argv(&["--config", &f.arg()])).unwrap();
        let chat = &loaded.args.namespaces["/chat"];
        assert_eq!(
            chat.hook_connect.as_deref(),
            Some("http://127.0.0.1:8000/chat/connect")
        );
        assert_eq!(chat.hook_events, Some(vec!["say".to_owned()]));
        assert_eq!(
            loaded.args.namespaces["/public"].hook_connect.as_deref(),
            Some("")
        );
        let shown = effective(&loaded);
        assert!(
            shown.contains("\n[namespaces.\"/chat\"]  # file\nhook_connect = \"http://127.0.0.1:8000/chat/connect\"\nhook_events = [\"say\"]\n"),
            "{shown}"
        );
        // The printed configuration reads back as TOML.
        let _: toml::Table = shown.parse().unwrap();

        let f = file("[namespaces.\"/chat\"]\nhook_conect = \"http://x\"\n");
        let e = error(&["--config", &f.arg()]);
        assert!(
            e.contains("`namespaces`.\"/chat\": unknown field `hook_conect`"),
            "{e}"
        );
        let f = file("[namespaces.chat]\nhook_connect = \"http://x\"\n");
        assert!(error(&["--config", &f.arg()]).contains("a namespace name starts with /"));
        let f = file("[namespaces.\"/chat\"]\nhook_connect = \"http://a b\"\n");
        assert!(error(&["--config", &f.arg()]).contains("is not a URL"));
    }

    #[test]
    fn secrets_and_url_passwords_are_masked() {
        let f = file(
            r#"
api_keys = ["k1", "k2"]
hook_secret = "s3cret"
redis = "redis://user:hunter2@127.0.0.1:6379/0"
dramatiq_broker = "amqp://guest:guest@localhost:5672/"
"#,
        );
        let shown = effective(&load(argv(&["--config", &f.arg()])).unwrap());
        assert!(
            !shown.contains("k1") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("api_keys = [\"****\", \"****\"]  # file"),
            "{shown}"
        );
        assert!(
            shown.contains("redis = \"redis://user:****@127.0.0.1:6379/0\"  # file"),
            "{shown}"
        );
        assert!(
            shown.contains("amqp://guest:****@localhost:5672/"),
            "{shown}"
        );
        assert_eq!(mask_url_password("redis://hunter2@h:1"), "redis://****@h:1");
        assert_eq!(mask_url_password("redis://h:1/0"), "redis://h:1/0");
    }

    #[test]
    fn the_readme_lists_every_option_as_they_are() {
        let readme = include_str!("../../../README.md");
        let start = readme
            .find(README_START)
            .expect("the README has the options table's start marker");
        let end = readme[start..]
            .find(README_END)
            .expect("and its end marker")
            + start;
        let in_readme = readme[start + README_START.len()..end].trim();
        assert!(
            in_readme == options_table().trim(),
            "the README's options table is out of date: replace it with the output of \
             `cargo run -p socketlet-cli -- --print-options`"
        );
    }
}
