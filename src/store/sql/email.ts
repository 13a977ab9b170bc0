/** Emails as the Store keeps them: lower-cased and trimmed (an empty result is no email). */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}
