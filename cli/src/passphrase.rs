//! Where passphrases come from: FERRY_PASSWORD, FERRY_PASSWORD_FILE,
//! FERRY_PASSWORD_COMMAND, else a prompt on the terminal. Never argv.

use std::io::IsTerminal;

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

/// A passphrase; cleared from memory on drop.
pub type Secret = Zeroizing<Vec<u8>>;

fn trim_newline(mut v: Vec<u8>) -> Vec<u8> {
    while v.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        v.pop();
    }
    v
}

/// The passphrase from `<prefix>_PASSWORD`, `_PASSWORD_FILE`, `_PASSWORD_COMMAND`.
fn from_env(prefix: &str) -> Result<Option<Secret>> {
    if let Some(p) = std::env::var_os(format!("{prefix}_PASSWORD")) {
        return Ok(Some(Zeroizing::new(p.into_encoded_bytes())));
    }
    if let Some(f) = std::env::var_os(format!("{prefix}_PASSWORD_FILE")) {
        let v = std::fs::read(&f).with_context(|| format!("reading {prefix}_PASSWORD_FILE {}", f.to_string_lossy()))?;
        return Ok(Some(Zeroizing::new(trim_newline(v))));
    }
    if let Some(c) = std::env::var_os(format!("{prefix}_PASSWORD_COMMAND")) {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&c)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("running {prefix}_PASSWORD_COMMAND"))?;
        if !out.status.success() {
            bail!("{prefix}_PASSWORD_COMMAND failed with {}", out.status);
        }
        return Ok(Some(Zeroizing::new(trim_newline(out.stdout))));
    }
    Ok(None)
}

fn prompt(text: &str, what: &str) -> Result<Secret> {
    if !std::io::stdin().is_terminal() {
        bail!(
            "no passphrase for {what}: set FERRY_PASSWORD, FERRY_PASSWORD_FILE or FERRY_PASSWORD_COMMAND \
             (or FERRY_KEY_FILE), or run on a terminal to be asked"
        );
    }
    Ok(Zeroizing::new(rpassword::prompt_password(text)?.into_bytes()))
}

/// True when a passphrase comes from the environment (FERRY_PASSWORD,
/// _FILE or _COMMAND): no prompt will be shown.
pub fn in_environment() -> bool {
    ["FERRY_PASSWORD", "FERRY_PASSWORD_FILE", "FERRY_PASSWORD_COMMAND"].iter().any(|v| std::env::var_os(v).is_some())
}

/// The passphrase of an existing store or replica; `what` names it
/// (`store /media/usb/projects`, `replica ~/Projects`) in the prompt.
pub fn existing(what: &str) -> Result<Secret> {
    match from_env("FERRY")? {
        Some(p) => Ok(p),
        None => prompt(&format!("passphrase for {what}: "), what),
    }
}

/// A new passphrase for `what`: `FERRY_NEW_*` if set, else
/// (`fallback_current`) the current one, else asked twice.
pub fn new(fallback_current: bool, what: &str) -> Result<Secret> {
    if let Some(p) = from_env("FERRY_NEW")? {
        return Ok(p);
    }
    if fallback_current && let Some(p) = from_env("FERRY")? {
        return Ok(p);
    }
    let a = prompt(&format!("new passphrase for {what}: "), what)?;
    let b = prompt(&format!("repeat the new passphrase for {what}: "), what)?;
    if *a != *b {
        bail!("the passphrases differ; nothing was written");
    }
    if a.is_empty() {
        bail!("an empty passphrase is not allowed");
    }
    Ok(a)
}
