// Reads a Procfile the way Heroku and foreman do: one `type: command` per line, other lines ignored.

const LINE = /^([A-Za-z0-9_-]+):\s*(.+?)\s*$/;

export function parseProcfile(text: string): Record<string, string> {
  const types: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const match = LINE.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) types[match[1]] = match[2];
  }
  return types;
}
