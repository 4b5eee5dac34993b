//! Fault injection for the start-up tests: `SYNGUARD_FAIL_AT=<step>` makes the process die at
//! that step as a kill -9 would (SIGKILL to itself: no destructor, no cleanup), so a test can
//! check that the next `run` or `detach` leaves the host as it was; `SYNGUARD_FAIL_AT=<fault>`
//! makes a kernel refuse something (see [`Fault`]), so a test can check what synguard does
//! then. Unset, every point is a no-op. Not an operator setting: the variable is read here
//! only.

/// The variable naming the step to die at.
const VAR: &str = "SYNGUARD_FAIL_AT";

/// The steps of an instance's start-up, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The run-info file records the settings about to change; nothing changed yet.
    Recorded,
    /// Kernel settings changed; nothing loaded or pinned.
    Sysctls,
    /// Maps pinned and the program loaded; not attached (a take-over: the previous program
    /// still runs behind the pinned link, with the pins this instance took over).
    Loaded,
    /// Attached; the run-info does not say so yet, the policy is not applied.
    Attached,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Recorded, Step::Sysctls, Step::Loaded, Step::Attached];

    pub fn name(self) -> &'static str {
        match self {
            Step::Recorded => "recorded",
            Step::Sysctls => "sysctls",
            Step::Loaded => "loaded",
            Step::Attached => "attached",
        }
    }
}

/// Refusals a test can ask the kernel for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The own-cookie XDP program reaches the kernel with an instruction the verifier refuses
    /// (a read of an uninitialised register), as on a kernel whose verifier gives up on it.
    OwnVerifier,
}

impl Fault {
    pub fn name(self) -> &'static str {
        match self {
            Fault::OwnVerifier => "own-verifier",
        }
    }
}

fn named(name: &str) -> bool {
    std::env::var(VAR).is_ok_and(|v| v == name)
}

/// Whether the variable asks for `fault`.
pub fn injected(fault: Fault) -> bool {
    let on = named(fault.name());
    if on {
        log::warn!("{VAR}={}: injecting this fault", fault.name());
    }
    on
}

/// Dies here, like a kill -9, when the variable names `step`.
pub fn point(step: Step) {
    if named(step.name()) {
        log::warn!("{VAR}={}: dying here as a kill -9 would", step.name());
        // SAFETY: kill(2) on our own pid; SIGKILL cannot be caught, nothing runs after it.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
}
