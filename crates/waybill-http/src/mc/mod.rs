//! JFrog Mission Control's edge registry under `/mc/api/v1/jpds`.

pub(crate) mod jpds;
