//! The connection flags every app API command takes, added by [`api_command!`].

/// Defines an app API command: the struct with its own arguments, then the flags that say
/// where the server is and as which app to sign (`--url`, `--app-id`, `--key`, `--secret`,
/// `--config`) and `--json`, with `api_flags()` and `target()` to read them. A macro
/// because argh cannot share fields between subcommands, and flags after the command name
/// (`raptor channels --url ...`) are what an operator types. The command's own fields (each
/// ending in a comma) are passed on as plain tokens: argh reads a field's type to tell an
/// `Option` or a `bool`, and cannot see into a type a `ty` fragment has wrapped.
macro_rules! api_command {
    (
        $(#[$($attr:tt)*])*
        pub struct $name:ident {
            $($fields:tt)*
        }
    ) => {
        #[derive(argh::FromArgs)]
        $(#[$($attr)*])*
        pub struct $name {
            $($fields)*
            /// the server, e.g. http://127.0.0.1:6001 (env RAPTOR_URL; default: the bind
            /// of the config file, else http://127.0.0.1:6001)
            #[argh(option)]
            pub url: Option<String>,
            /// the app's id (env RAPTOR_APP_ID; default: the first app of the config file,
            /// else 1)
            #[argh(option)]
            pub app_id: Option<String>,
            /// the app's key (env RAPTOR_APP_KEY)
            #[argh(option)]
            pub key: Option<String>,
            /// the app's secret; prefer the env RAPTOR_APP_SECRET, as every local user can
            /// read a command line
            #[argh(option)]
            pub secret: Option<$crate::cli::target::SecretArg>,
            /// the server's TOML config file, to take the server and the app from (env
            /// RAPTOR_CONFIG)
            #[argh(option)]
            pub config: Option<std::path::PathBuf>,
            /// print JSON (the server's answer) instead of a table
            #[argh(switch)]
            pub json: bool,
        }

        impl $name {
            /// The connection flags as given.
            pub fn api_flags(&self) -> $crate::cli::target::ApiFlags {
                $crate::cli::target::ApiFlags {
                    url: self.url.clone(),
                    app_id: self.app_id.clone(),
                    key: self.key.clone(),
                    secret: self.secret.as_ref().map(|s| s.0.clone()),
                    config: self.config.clone(),
                }
            }

            /// Where to send, and as which app: flags, environment, config file, defaults.
            pub fn target(
                &self,
            ) -> Result<$crate::cli::target::AppTarget, $crate::cli::CliError> {
                $crate::cli::target::AppTarget::resolve(
                    &self.api_flags(),
                    &$crate::cli::target::process_env,
                )
            }
        }
    };
}
