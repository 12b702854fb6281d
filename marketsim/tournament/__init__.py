"""The tournament wing: schedules, matches, executors, the result store, scoring, the meta-game and reports."""
