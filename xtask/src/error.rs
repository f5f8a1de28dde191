//! The error type every task returns: an exit code and, maybe, a one-line message. Depends on
//! nothing else in the crate, so every module can use it.

/// An error that carries the process exit code (and maybe a one-line message).
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub msg: Option<String>,
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.msg {
            Some(m) => f.write_str(m),
            None => write!(f, "exit code {}", self.code),
        }
    }
}
impl std::error::Error for Exit {}

pub type Result<T, E = anyhow::Error> = std::result::Result<T, E>;

/// Exit with `code` and a one-line message.
pub fn exit(code: i32, msg: impl Into<String>) -> anyhow::Error {
    Exit {
        code,
        msg: Some(msg.into()),
    }
    .into()
}

/// Exit 2: bad usage or input. The message says what is wrong and how to fix it.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    exit(2, msg)
}

/// Exit 1 with a one-line message.
pub fn fail(msg: impl Into<String>) -> anyhow::Error {
    exit(1, msg)
}

/// Exit with `code`, nothing more to say (the engine or pytest already said it).
pub fn code(code: i32) -> anyhow::Error {
    Exit { code, msg: None }.into()
}

/// The exit code an error stands for (1 for anything that is not an `Exit`).
pub fn code_of(e: &anyhow::Error) -> i32 {
    e.downcast_ref::<Exit>().map_or(1, |x| x.code)
}

/// Turn a task's result into the process exit code, printing the error on stderr.
pub fn finish(result: Result<()>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<Exit>() {
            Some(exit) => {
                if let Some(m) = &exit.msg {
                    eprintln!("error: {m}");
                }
                exit.code
            }
            None => {
                eprintln!("error: {e:#}");
                1
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_error_carries_code() {
        assert_eq!(finish(Err(usage("bad"))), 2);
        assert_eq!(finish(Err(code(7))), 7);
        assert_eq!(finish(Err(anyhow::anyhow!("x"))), 1);
        assert_eq!(finish(Ok(())), 0);
        assert_eq!(code_of(&fail("x")), 1);
        assert_eq!(code_of(&exit(130, "x")), 130);
    }
}
