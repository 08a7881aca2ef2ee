//! `[admin]`: the dashboard and the admin API (docs/dashboard.md): on or off, the password,
//! how long a login lasts.

use super::{invalid, Config, ConfigError, Overrides, Secret};
use serde::{Deserialize, Serialize};

/// The `[admin]` table.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve `/dashboard` and `/admin/api/*`. Default true; false: both are 404.
    pub enabled: bool,
    /// The admin password (at least 12 characters). Absent (and no `password_file`): a
    /// random one is made at start and logged once. Also `RAPTOR_ADMIN_PASSWORD`.
    #[serde(skip_serializing)]
    pub password: Option<Secret>,
    /// A file holding the password (surrounding whitespace ignored). Not together with
    /// `password`.
    pub password_file: Option<std::path::PathBuf>,
    /// How long a login lasts, in hours (1 to 168).
    pub session_hours: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            password: None,
            password_file: None,
            session_hours: 12,
        }
    }
}

/// Shortest password accepted.
const MIN_PASSWORD_CHARS: usize = 12;

impl Config {
    /// `RAPTOR_ADMIN_PASSWORD` replaces the file's password and password file.
    pub(super) fn apply_admin_overrides(&mut self, over: &Overrides) {
        if let Some(p) = &over.admin_password {
            self.admin.password = Some(p.clone());
            self.admin.password_file = None;
        }
    }

    /// Reads `admin.password_file` into `admin.password`.
    pub(super) fn read_admin_password_file(&mut self) -> Result<(), ConfigError> {
        let a = &mut self.admin;
        super::read_secret_file(&mut a.password, &mut a.password_file, "admin.password")
    }

    pub(super) fn validate_admin(&self) -> Result<(), ConfigError> {
        let a = &self.admin;
        if !(1..=168).contains(&a.session_hours) {
            return Err(invalid("admin.session_hours", "must be 1..=168"));
        }
        if let Some(p) = &a.password {
            // The message must not quote the password.
            if p.expose().chars().count() < MIN_PASSWORD_CHARS {
                return Err(invalid(
                    "admin.password",
                    format!("must be at least {MIN_PASSWORD_CHARS} characters"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str) -> Result<Config, ConfigError> {
        let mut c = Config::from_toml(toml, "t.toml")?;
        c.read_admin_password_file()?;
        c.validate().map(|()| c)
    }

    #[test]
    fn defaults_on_without_a_password() {
        let c = load("").unwrap();
        assert_eq!(c.admin, AdminConfig::default());
        assert!(c.admin.enabled && c.admin.password.is_none());
    }

    #[test]
    fn short_password_and_bad_session_hours_are_refused_naming_the_field() {
        let e = load("[admin]\npassword = \"short\"\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid config: field `admin.password`: must be at least 12 characters"
        );
        let e = load("[admin]\nsession_hours = 0\n").unwrap_err();
        assert!(e.to_string().contains("`admin.session_hours`"), "{e}");
    }

    #[test]
    fn password_file_is_read_and_trimmed() {
        let p = std::env::temp_dir().join(format!("raptor-admin-pw-{}", std::process::id()));
        std::fs::write(&p, "  correct-horse-battery\n").unwrap();
        let c = load(&format!("[admin]\npassword_file = \"{}\"\n", p.display())).unwrap();
        assert_eq!(
            c.admin.password.as_ref().map(Secret::expose),
            Some("correct-horse-battery")
        );
        let _ = std::fs::remove_file(p);
    }
}
