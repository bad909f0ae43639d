//! Errors as users see them: one line saying what is wrong and, where the
//! message knows, how to fix it.

/// `a: b: c` from an error and its sources, on one line; a source whose
/// text its parent already says is left out. A verifier log is cut to its
/// verdict (the whole log is at `RUST_LOG=debug`).
pub fn one_line(e: &dyn std::error::Error) -> String {
    log::debug!("in full: {e}");
    let mut s = first_line(&e.to_string());
    let mut source = e.source();
    while let Some(inner) = source {
        let text = first_line(&inner.to_string());
        if !s.contains(&text) {
            s += &format!(": {text}");
        }
        source = inner.source();
    }
    s
}

fn first_line(message: &str) -> String {
    let Some((head, log)) = message.split_once("Verifier output:") else {
        return message.lines().next().unwrap_or_default().to_string();
    };
    let statistics = ["verification time", "stack depth", "processed ", "max_states"];
    let verdict =
        log.lines().map(str::trim).rev().find(|l| !l.is_empty() && !statistics.iter().any(|s| l.starts_with(s)));
    let head = head.trim().trim_end_matches('.');
    match verdict {
        Some(verdict) => format!("{head}; verifier: {verdict}"),
        None => head.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_logs_are_cut_to_their_verdict() {
        let message = "the BPF_PROG_LOAD syscall returned Invalid argument (os error 22). Verifier output: 0: R1=ctx() R10=fp0\n453: frame1: R1=fp[0]-88\ncannot return stack pointer to the caller\nverification time 3361 usec\nstack depth 88+376+0\nprocessed 610 insns (limit 1000000)\n";
        assert_eq!(
            first_line(message),
            "the BPF_PROG_LOAD syscall returned Invalid argument (os error 22); verifier: cannot return stack pointer to the caller"
        );
        assert_eq!(first_line("Operation not permitted. Verifier output: "), "Operation not permitted");
        assert_eq!(first_line("first\nsecond"), "first");
    }

    #[test]
    fn sources_follow_on_the_same_line_once() {
        let e = anyhow::anyhow!("disk on fire").context("cannot read /etc/rsttrace/rsttrace.toml");
        assert_eq!(one_line(e.as_ref()), "cannot read /etc/rsttrace/rsttrace.toml: disk on fire");
        let repeated = anyhow::anyhow!("no such file").context("cannot open x: no such file");
        assert_eq!(one_line(repeated.as_ref()), "cannot open x: no such file");
    }
}
