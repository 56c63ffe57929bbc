//! The states an incident moves through and what may be done in each — the
//! alarm systems' model (ThingsBoard's active/acknowledged/cleared, ISA-18.2):
//!
//! ```text
//!   open ──acknowledge──► acknowledged
//!     │                        │
//!     └──────resolve──────┬────┘
//!                         ▼
//!                     resolved   (final: a new episode opens a new incident)
//! ```
//!
//! Comments are allowed in every state (notes after the fact belong on the
//! timeline too); assignment until it is resolved.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Open,
    Acknowledged,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(Self::Open),
            "acknowledged" => Some(Self::Acknowledged),
            "resolved" => Some(Self::Resolved),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Acknowledge,
    Comment,
    Assign,
    Resolve,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledge => "acknowledge",
            Self::Comment => "comment on",
            Self::Assign => "assign",
            Self::Resolve => "resolve",
        }
    }
}

/// The state after `action`, or `None` when the incident cannot take it.
pub fn next(from: State, action: Action) -> Option<State> {
    use {Action::*, State::*};
    match (from, action) {
        (Open, Acknowledge) => Some(Acknowledged),
        (Open | Acknowledged, Resolve) => Some(Resolved),
        (s, Comment) => Some(s),
        (Open | Acknowledged, Assign) => Some(from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_and_action() {
        use {Action::*, State::*};
        let table = [
            (Open, Acknowledge, Some(Acknowledged)),
            (Open, Resolve, Some(Resolved)),
            (Open, Comment, Some(Open)),
            (Open, Assign, Some(Open)),
            (Acknowledged, Acknowledge, None),
            (Acknowledged, Resolve, Some(Resolved)),
            (Acknowledged, Comment, Some(Acknowledged)),
            (Acknowledged, Assign, Some(Acknowledged)),
            (Resolved, Acknowledge, None),
            (Resolved, Resolve, None),
            (Resolved, Comment, Some(Resolved)),
            (Resolved, Assign, None),
        ];
        for (from, action, to) in table {
            assert_eq!(next(from, action), to, "{from:?} {action:?}");
        }
        for s in [Open, Acknowledged, Resolved] {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
    }
}
