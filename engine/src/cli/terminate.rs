//! `raptor terminate USER`: `POST /apps/{id}/users/{user}/terminate_connections`.

use super::client::ApiClient;
use super::output::print;
use super::CliError;

api_command! {
    /// Close every connection signed in as a user, on every node
    /// (POST /apps/ID/users/USER/terminate_connections).
    #[argh(subcommand, name = "terminate")]
    pub struct Terminate {
        /// the user's id, as the app signed it in
        #[argh(positional)]
        pub user: String,
    }
}

impl Terminate {
    pub fn run(&self) -> Result<(), CliError> {
        let api = ApiClient::new(self.target()?)?;
        let path = api.app_path(&["users", &self.user, "terminate_connections"]);
        // `{}` as the SDKs send it; the server needs no body.
        let text = api.post(&path, b"{}")?.json_text()?;
        if self.json {
            print(&text);
        } else {
            print(&format!("closing the connections of user {}\n", self.user));
        }
        Ok(())
    }
}
