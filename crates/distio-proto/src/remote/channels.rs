//! The channels of one session, as either side tracks them.

use std::collections::HashMap;

use super::frames::Channel;
use super::violation::SessionViolation;

/// Where a channel's slave is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Spawn sent, not yet answered.
    Starting,
    /// Started; its frames flow.
    Running,
}

/// What a channel number names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    Live(Stage),
    /// Opened once and finished since.
    Ended,
    /// Never opened.
    Unknown,
}

impl Lookup {
    pub(crate) fn stage_name(self) -> &'static str {
        match self {
            Lookup::Live(Stage::Starting) => "starting",
            Lookup::Live(Stage::Running) => "running",
            Lookup::Ended => "ended",
            Lookup::Unknown => "unknown",
        }
    }

    /// The violation of a `kind` frame naming `channel` when the channel is at `self`
    /// and the frame needs it elsewhere.
    pub(crate) fn violation(self, channel: Channel, kind: &'static str) -> SessionViolation {
        match self {
            Lookup::Unknown => SessionViolation::UnknownChannel { channel, kind },
            other => SessionViolation::WrongStage {
                channel,
                kind,
                stage: other.stage_name(),
            },
        }
    }
}

/// The live channels, and the last one opened: channels only increase, so every number up
/// to it that is not live has ended, and the table never holds more than the live ones.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    last: Channel,
    live: HashMap<Channel, Stage>,
}

impl Channels {
    pub(crate) fn lookup(&self, channel: Channel) -> Lookup {
        match self.live.get(&channel) {
            Some(stage) => Lookup::Live(*stage),
            None if channel != 0 && channel <= self.last => Lookup::Ended,
            None => Lookup::Unknown,
        }
    }

    pub(crate) fn live(&self) -> usize {
        self.live.len()
    }

    /// The next channel number this side may open.
    pub(crate) fn next(&self) -> Result<Channel, SessionViolation> {
        self.last
            .checked_add(1)
            .ok_or(SessionViolation::ChannelsExhausted)
    }

    /// Records `channel` as opened. With `starting`, it is live and starting; without, it
    /// is opened and ended at once (a spawn refused on arrival).
    pub(crate) fn open(&mut self, channel: Channel, live: bool) -> Result<(), SessionViolation> {
        if channel <= self.last {
            return Err(SessionViolation::ChannelNotIncreasing {
                channel,
                last: self.last,
            });
        }
        self.last = channel;
        if live {
            self.live.insert(channel, Stage::Starting);
        }
        Ok(())
    }

    /// Moves a live channel from `from` to running, or ends it (`to = None`). A channel not
    /// at `from` is a violation naming `kind`.
    pub(crate) fn advance(
        &mut self,
        channel: Channel,
        from: Stage,
        to: Option<Stage>,
        kind: &'static str,
    ) -> Result<(), SessionViolation> {
        self.expect(channel, from, kind)?;
        match to {
            Some(stage) => {
                self.live.insert(channel, stage);
            }
            None => {
                self.live.remove(&channel);
            }
        }
        Ok(())
    }

    /// Checks that `channel` is live at `stage`.
    pub(crate) fn expect(
        &self,
        channel: Channel,
        stage: Stage,
        kind: &'static str,
    ) -> Result<(), SessionViolation> {
        match self.lookup(channel) {
            Lookup::Live(s) if s == stage => Ok(()),
            other => Err(other.violation(channel, kind)),
        }
    }

    /// Ends every live channel; returns them.
    pub(crate) fn drain(&mut self) -> Vec<Channel> {
        let mut all: Vec<Channel> = self.live.drain().map(|(c, _)| c).collect();
        all.sort_unstable();
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_increase_and_end() {
        let mut c = Channels::default();
        assert_eq!(c.lookup(0), Lookup::Unknown);
        assert!(c.open(0, true).is_err(), "0 is never a channel");
        c.open(1, true).unwrap();
        c.open(5, false).unwrap();
        assert!(matches!(
            c.open(3, true),
            Err(SessionViolation::ChannelNotIncreasing {
                channel: 3,
                last: 5
            })
        ));
        assert_eq!(c.lookup(1), Lookup::Live(Stage::Starting));
        assert_eq!(c.lookup(3), Lookup::Ended);
        assert_eq!(c.lookup(6), Lookup::Unknown);
        c.advance(1, Stage::Starting, Some(Stage::Running), "spawned")
            .unwrap();
        assert!(c.advance(1, Stage::Starting, None, "spawned").is_err());
        c.advance(1, Stage::Running, None, "exited").unwrap();
        assert_eq!(c.lookup(1), Lookup::Ended);
        assert_eq!(c.live(), 0);
        assert_eq!(c.next().unwrap(), 6);
    }

    #[test]
    fn the_last_channel_number_is_the_end() {
        let mut c = Channels::default();
        c.open(Channel::MAX, true).unwrap();
        assert_eq!(c.next(), Err(SessionViolation::ChannelsExhausted));
    }
}
