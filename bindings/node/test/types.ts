// Compiled by `npm run typecheck` (tsc), never run: the declarations in
// index.d.ts accept what they should and refuse what they should.
import { createElection, election, Election, Ticket, Campaign, Ending, Status, ResourceStatus } from '..';

type Resource = 'echo' | 'reports';
const scope = createElection<Resource>({ tickets: 2 });

// The framework's shape: onObtain gets release; cleanup may be async.
const campaign: Campaign = scope.obtain(
  'echo',
  (release) => {
    const timer = setInterval(() => console.log('Hello World, pid:', process.pid), 2000);
    void release;
    return timer;
  },
  async (ending: Ending) => {
    console.log(ending);
  },
  { tickets: 2 },
);
scope.obtain('reports', () => {}, { requeue: true });
const resigned: Promise<void> = campaign.resign();
void resigned;

async function promises() {
  const t: Ticket = await scope.obtain('echo');
  const maybe: Ticket | null = await scope.obtain('echo', { timeout: 100 });
  const now: Ticket | null = scope.tryObtain('reports');
  const slot: number = t.slot;
  const token: bigint = t.tokenBigInt;
  t.release();
  void [maybe, now, slot, token];
  const st: ResourceStatus<Resource> = scope.status('echo');
  const all: Status = scope.status();
  void [st, all];
  // @ts-expect-error: not one of the resources
  await scope.obtain('other');
  // @ts-expect-error: not one of the resources
  scope.tryObtain('ech');
  // @ts-expect-error: tickets is a number
  scope.tryObtain('echo', { tickets: '2' });
  // @ts-expect-error: unknown option
  scope.tryObtain('echo', { ticket: 2 });
}
void promises;

// Without a type argument any name goes.
const any = new Election();
any.tryObtain('whatever');
election.tryObtain('anything');
