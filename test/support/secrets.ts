/**
 * Secrets the suite hands to pitr. Every CLI run's output is recorded, and the global teardown
 * fails the run if any of them shows up where it must not (see global-setup.ts).
 */
export const TEST_NEON_API_KEY = 'napi_test_k3y_do_not_print_0123456789';
export const TEST_DB_PASSWORD = 'pw-Secret-91x';
/** Runs that print a password on purpose (the user asked for it). */
export const REVEALING_COMMANDS = ['--show-password', 'connection-string', 'cs'];
