import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

function demo(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['dist/demo/main.js', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('npm run demo', () => {
  it('simulates a job of separate pod processes and prints the released roster and the release delay', async () => {
    const { code, stdout, stderr } = await demo(['--pods', '5', '--stagger', '50']);
    expect(code, stderr).toBe(0);
    expect(stderr).toContain('kubepeers demo: 5 pods of Indexed Job "demo-job"');
    expect(stdout).toContain('Released roster (identical in all 5 pods: yes)');
    for (let i = 0; i < 5; i++) {
      expect(stdout).toMatch(
        new RegExp(
          `^ +${i}  demo-job-${i}\\.demo-svc\\.default\\.svc\\.cluster\\.local +127\\.42\\.0\\.${i + 1}$`,
          'm',
        ),
      );
    }
    expect(stdout).toMatch(
      /From the last pod becoming Ready to release: first \d+ ms, p50 \d+ ms, p95 \d+ ms, last \d+ ms/,
    );
    expect(stdout).toMatch(/DNS queries: \d+ in all/);
  });

  it('rejects a bad flag with exit code 2 and says what was expected', async () => {
    const { code, stderr } = await demo(['--pods', 'many']);
    expect(code).toBe(2);
    expect(stderr).toContain('--pods is "many"; expected an integer from 1 to 500');
  });
});
