//! `rosh`: a RouterOS API shell built only on `routeros-proto`.
//!
//! Sends one command, prints each reply on one line (`!re .id=*1 address=...`, or one JSON
//! object per reply with `--json`), and exits non-zero with the router's message on a
//! trap, a fatal error or a failed login. See `rosh --help`.

mod args;

use std::borrow::Cow;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use routeros_proto::net::{Client, ClientConfig, Error, Fingerprint, TlsConfig};
use routeros_proto::{Command, LoginMethod, Reply};

use args::{Args, LoginKind};

/// The router refused something (trap, fatal, login).
const EXIT_REFUSED: u8 = 1;
/// The connection or the configuration failed.
const EXIT_FAILED: u8 = 2;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("rosh: {error}");
            ExitCode::from(exit_code(&error))
        }
    }
}

fn exit_code(error: &Error) -> u8 {
    match error {
        Error::Trap { .. } | Error::Fatal { .. } | Error::LoginRefused { .. } | Error::Login(_) => {
            EXIT_REFUSED
        }
        _ => EXIT_FAILED,
    }
}

fn client_config(args: &Args) -> Result<ClientConfig, Error> {
    // Never printed, never in an error message.
    let password = std::env::var_os("ROS_PASSWORD").unwrap_or_default();
    let mut config = ClientConfig::new(&args.host, &args.user, password.as_encoded_bytes())
        .port(args.port())
        .login_method(match args.login {
            LoginKind::Auto => LoginMethod::Auto,
            LoginKind::Plain => LoginMethod::Plain,
            LoginKind::Legacy => LoginMethod::Legacy,
        })
        .connect_timeout(args.timeout().unwrap_or(Duration::from_secs(30)))
        .command_timeout(args.timeout())
        // rosh's one command has the connection to itself, and stdout may be a pager that
        // stops reading for minutes: wait for it, however long (the client stops reading
        // the router meanwhile, so memory stays bounded).
        .stream_stall_timeout(None);
    if args.tls {
        // clap makes --tls come with exactly one of --ca and --fingerprint.
        let mut tls = match &args.ca {
            Some(ca) => TlsConfig::with_ca_file(ca)?,
            None => {
                let fingerprint = args.fingerprint.as_deref().unwrap_or_default();
                TlsConfig::with_fingerprint(fingerprint.parse::<Fingerprint>()?)
            }
        };
        if let Some(name) = &args.server_name {
            tls = tls.server_name(name);
        }
        config = config.tls(tls);
    }
    Ok(config)
}

async fn run(args: &Args) -> Result<ExitCode, Error> {
    let client = Client::connect(&client_config(args)?).await?;
    let words = std::iter::once(args.command.as_str()).chain(args.words.iter().map(String::as_str));
    let command = Command::from_words(words).unwrap_or_else(|| Command::new(&args.command));
    let printer = Printer { json: args.json };

    let mut replies = client.stream(command);
    let mut refused = false;
    // One listener for the whole run, so a Ctrl-C between two replies is not missed.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let interrupted = loop {
        let item = tokio::select! {
            item = replies.next() => item,
            _ = &mut ctrl_c => break true,
        };
        match item {
            None => break false,
            Some(Ok(row)) => printer.row(&row),
            Some(Err(Error::Trap { command, trap })) => {
                printer.trap(&trap);
                eprintln!("rosh: the router refused `{command}`: {trap}");
                refused = true;
            }
            Some(Err(other)) => return Err(other),
        }
    };
    if interrupted {
        // Dropping the stream sends `/cancel`; `close` writes it and `/quit` out.
        drop(replies);
    } else {
        if replies.is_empty_reply() {
            printer.simple("!empty", None);
        }
        printer.simple("!done", replies.ret().map(|r| String::from_utf8_lossy(r)));
    }
    client.close().await;
    Ok(if refused {
        ExitCode::from(EXIT_REFUSED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Writes replies to stdout, one line each.
struct Printer {
    json: bool,
}

impl Printer {
    fn row(&self, row: &Reply) {
        let attributes = row.attributes().map(|(name, value)| {
            (
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(value),
            )
        });
        self.line("!re", attributes);
    }

    fn trap(&self, trap: &routeros_proto::Trap) {
        let category = trap.category.map(|c| c.code().to_string());
        let attributes = category
            .map(|c| (Cow::Borrowed("category"), Cow::Owned(c)))
            .into_iter()
            .chain([(
                Cow::Borrowed("message"),
                Cow::Borrowed(trap.message.as_str()),
            )]);
        self.line("!trap", attributes);
    }

    fn simple(&self, word: &str, ret: Option<Cow<'_, str>>) {
        self.line(word, ret.map(|r| (Cow::Borrowed("ret"), r)).into_iter());
    }

    fn line<'a>(&self, word: &str, attributes: impl Iterator<Item = (Cow<'a, str>, Cow<'a, str>)>) {
        let text = if self.json {
            let mut object = serde_json::Map::new();
            // Attribute names never start with `!`, so this key cannot collide.
            object.insert("!reply".to_owned(), word.into());
            for (name, value) in attributes {
                object.insert(name.into_owned(), value.into_owned().into());
            }
            serde_json::Value::Object(object).to_string()
        } else {
            let mut text = word.to_owned();
            for (name, value) in attributes {
                text.push(' ');
                text.push_str(&name);
                text.push('=');
                text.push_str(&quote(&value));
            }
            text
        };
        let mut out = std::io::stdout().lock();
        // A closed pipe (`rosh ... | head`) is not worth a panic.
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

/// A value as is, or quoted when it is empty or has spaces, quotes or control characters,
/// so that one reply stays one line.
fn quote(value: &str) -> Cow<'_, str> {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\');
    if plain {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(format!("{value:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn values_are_quoted_only_when_needed() {
        assert_eq!(quote("*1"), "*1");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("line\nbreak"), "\"line\\nbreak\"");
    }
}
