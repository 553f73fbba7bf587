//! Replay: the same command log gives the same events and state on a fresh
//! engine, and restoring a snapshot then applying the rest of the log gives
//! the same as replaying all of it.

mod common;

use common::{commands, engine};
use malipo_matching::{Command, Engine, Event, RejectReason};
use proptest::prelude::*;

type Answers = Vec<Result<Vec<Event>, RejectReason>>;

fn run(engine: &mut Engine, commands: &[Command]) -> Answers {
    commands
        .iter()
        .map(|command| engine.apply(command))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn replaying_the_log_gives_the_same_events_and_state(commands in commands(150)) {
        let mut first = engine();
        let answers = run(&mut first, &commands);
        // The log as a caller would write it, durably, and read it back.
        let log = serde_json::to_string(&commands).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let logged: Vec<Command> = serde_json::from_str(&log).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut second = engine();
        prop_assert_eq!(run(&mut second, &logged), answers);
        prop_assert_eq!(&second, &first);
    }

    #[test]
    fn a_snapshot_then_the_rest_of_the_log_equals_replay(
        commands in commands(150),
        cut in any::<prop::sample::Index>(),
    ) {
        let cut = cut.index(commands.len() + 1);
        let mut whole = engine();
        let answers = run(&mut whole, &commands);

        let mut before = engine();
        run(&mut before, &commands[..cut]);
        let snapshot = serde_json::to_string(&before).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut restored: Engine = serde_json::from_str(&snapshot).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&restored, &before);
        prop_assert_eq!(run(&mut restored, &commands[cut..]), answers[cut..].to_vec());
        prop_assert_eq!(&restored, &whole);
        prop_assert_eq!(restored.depth(usize::MAX), whole.depth(usize::MAX));
    }
}
