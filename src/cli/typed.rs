//! Typed flags: a `value_parser` that checks a flag's text with one of `config`'s parsers
//! and, on a bad value, names the flag and its environment variable, as in
//! `error: --url-ttl / EXPORTS_URL_TTL: 'soon' is not a duration; write e.g. 3600, 90s, ...`.

use clap::builder::TypedValueParser;
use clap::error::{Error, ErrorKind};
use clap::{Arg, Command};

/// A `value_parser` from a function that parses the text or says what is wrong with it.
#[derive(Clone)]
pub struct Checked<F>(pub F);

impl<T, F> TypedValueParser for Checked<F>
where
    T: Clone + Send + Sync + 'static,
    F: Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(&self, cmd: &Command, arg: Option<&Arg>, value: &std::ffi::OsStr) -> Result<T, Error> {
        let text = value.to_string_lossy();
        (self.0)(&text).map_err(|why| {
            let mut name = arg.and_then(|a| a.get_long()).map(|l| format!("--{l}")).unwrap_or_default();
            if let Some(env) = arg.and_then(|a| a.get_env()) {
                name = format!("{name} / {}", env.to_string_lossy());
            }
            // "--x / X must be ..." reads as a sentence; anything else follows a colon
            let sep = if why.starts_with("must ") { " " } else { ": " };
            Error::raw(ErrorKind::ValueValidation, format!("{name}{sep}{why}\n")).with_cmd(cmd)
        })
    }
}
