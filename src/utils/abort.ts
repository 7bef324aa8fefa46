// Waiting on a promise that does not take a signal itself: the race-signal package (it rejects with the signal's
// reason, and leaves the promise to settle alone). Re-exported only for src/api/rest/multipart.ts until that file
// imports race-signal itself; new code imports 'race-signal' directly.
export { raceSignal } from 'race-signal'
