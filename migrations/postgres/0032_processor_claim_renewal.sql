-- When a claim was taken. The instance that holds a claim renews it while
-- its repetition is still in the schedule, up to 12 claim TTLs after
-- claimed_at (renewClaims in processor/claims.go): a schedule that lags behind the
-- completions no longer sends the command of a completed repetition again
-- each time a claim's TTL runs out. NULL (a claim from before this column):
-- never renewed.
ALTER TABLE processor_claims ADD COLUMN claimed_at TIMESTAMPTZ;
