"""``ykt bench``: complete transactions a second on simulated hardware, their cryptography floor, where the time goes.

A run takes one *flow*, a kind of transaction, through the real path: the composite purchase of a bus validator
(:mod:`.purchase`, the default) or the load of a top-up machine (:mod:`.load`). Each worker owns the terminal of its
flow with everything behind it (journal, simulated PSAM or in-process load host) and a generated card population on a
simulated reader without a timing model; riders tap in turn (:mod:`.loop`). Every card makes one transaction before
timing starts (imports, long-lived key contexts), as it would have on earlier days.

What is counted: transactions the terminal's records hold as done (a purchase the journal *acknowledged*, in group
commit once its batch is on disk; a load whose TAC the host confirmed). Per-transaction latency is the wall time of
one terminal call (``Validator.poll``, ``LoadTerminal.load``); a transaction's cost (the mean) is those times plus a
final flush per counted transaction: the terminal's time without the loop's own work of presenting cards and moving
the clock (reported apart, as wall time per transaction).

The cryptography floor (:mod:`.floor`) is the same cipher operations a transaction makes in the card and its
counterpart (PSAM or load host), with the same key objects and cipher contexts, and nothing else; the ratio is a
transaction's cost to it. Where the time goes comes from a separate, sampled pass (:mod:`.profiler`). Several workers
run as processes (:mod:`.processes`); :mod:`.stats` makes the report.

Modules: :mod:`.spec` (what a run is asked), :mod:`.loop` (one worker: warm-up, timed loop, floor, profile, money
check), :mod:`.purchase` and :mod:`.load` (the flows), :mod:`.floor`, :mod:`.profiler`, :mod:`.processes`,
:mod:`.stats`.
"""
