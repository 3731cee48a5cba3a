// The TypeScript runner's cases of the manager services (the Go runner's cmd/interop/services.go
// implements the same cases with the same output), on the generated service descriptors that
// share the client's connection:
//
//   workflow-create --id W --count TOTAL_STEPS --value CONTEXT_JSON
//   workflow-transition --id W --action start|pause|resume|cancel
//   workflow-step --id W --step N --name NAME --value RESULT_JSON
//   workflow-get --id W
//   task-work --team T --agent A
//   speech-follow --id SESSION [--start-revision FROM_SEQUENCE]
//   agent-snapshot --id AGENT --value MEMORY_JSON
//   tool-execution --id EXECUTION --name TOOL --value PARAMETERS_JSON
//   knowledge-progress --id KNOWLEDGE_BASE --count TOTAL_DOCUMENTS

import { AgentService } from "./gen/statekeeper/v1/agent_service_pb.js";
import { ValueEncoding } from "./gen/statekeeper/v1/common_pb.js";
import { IndexingStatus, KnowledgeService } from "./gen/statekeeper/v1/knowledge_service_pb.js";
import { ToolExecutionStatus, ToolService } from "./gen/statekeeper/v1/tool_service_pb.js";
import { OrchestrationService, TaskState } from "./gen/statekeeper/v1/orchestration_service_pb.js";
import {
  AudioSessionStatus,
  SpeechService,
  type SessionEvent,
} from "./gen/statekeeper/v1/speech_service_pb.js";
import {
  StepStatus,
  WorkflowService,
  WorkflowStatus,
} from "./gen/statekeeper/v1/workflow_service_pb.js";
import { FailedPreconditionError, fromError, UnavailableError } from "./errors.js";
import { describe, emit, expectFailure, type Case, type Json } from "./interop_common.js";
import { fromValue, toValue, type Document } from "./values.js";
import { setTimeout as sleep } from "node:timers/promises";

/** An enum value spelled as the Python API does (WorkflowStatus.PAUSED -> "paused"). */
function enumName(names: Record<number, string>, value: number): string {
  return (names[value] ?? "unspecified").toLowerCase();
}

async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw fromError(error);
  }
}

function parse(text: string | boolean | undefined, fallback: string): Document {
  return JSON.parse(String(text ?? fallback)) as Document;
}

function speechEvent(event: SessionEvent): { [key: string]: Json } {
  const line: { [key: string]: Json } = { sequence: event.sequence };
  const change = event.change;
  switch (change.case) {
    case "created":
      return { ...line, kind: "created", session_type: change.value.sessionType };
    case "statusChanged":
      return { ...line, kind: "status_changed", status: enumName(AudioSessionStatus, change.value.status) };
    case "sttState":
      return {
        ...line,
        kind: "stt_state",
        transcript: change.value.interimTranscript + change.value.finalTranscript,
        confidence: change.value.confidence,
      };
    case "ttsState":
      return { ...line, kind: "tts_state", text: change.value.currentText };
    case "conversationState":
      return { ...line, kind: "conversation_state", turn_count: change.value.turnCount };
    case "ended":
      return { ...line, kind: "ended", reason: change.value.reason };
    default:
      return { ...line, kind: "unknown" };
  }
}

export const serviceCases: Record<string, Case> = {
  async "workflow-create"(client, values) {
    const workflows = client.service(WorkflowService);
    const response = await call(() =>
      workflows.createWorkflow({
        workflow: {
          workflowId: String(values.id),
          status: WorkflowStatus.PENDING,
          totalSteps: BigInt(String(values.count ?? "0")),
          context: toValue(parse(values.value, "{}")),
        },
      }),
    );
    emit({ status: enumName(WorkflowStatus, response.workflow?.status ?? 0) });
  },

  // Prints {"status": ...}, or {"error": {...}} when the server refuses the transition.
  async "workflow-transition"(client, values) {
    const workflows = client.service(WorkflowService);
    const workflowId = String(values.id);
    const actions: Record<string, () => Promise<{ status: WorkflowStatus }>> = {
      start: () => workflows.startWorkflow({ workflowId }),
      pause: () => workflows.pauseWorkflow({ workflowId }),
      resume: () => workflows.resumeWorkflow({ workflowId }),
      cancel: () => workflows.cancelWorkflow({ workflowId, reason: "interop" }),
    };
    const action = actions[String(values.action)];
    if (action === undefined) throw new Error(`unknown action ${String(values.action)}`);
    try {
      const response = await call(action);
      emit({ status: enumName(WorkflowStatus, response.status) });
    } catch (error) {
      if (!(error instanceof Error) || !("reason" in error)) throw error;
      emit({ error: { ...describe(error), is_failed_precondition: error instanceof FailedPreconditionError } });
    }
  },

  async "workflow-step"(client, values) {
    const workflows = client.service(WorkflowService);
    try {
      const response = await call(() =>
        workflows.updateStep({
          workflowId: String(values.id),
          step: {
            stepNumber: BigInt(String(values.step ?? "1")),
            name: String(values.name ?? ""),
            status: StepStatus.COMPLETED,
            result: toValue(parse(values.value, "null")),
          },
          valueEncoding: ValueEncoding.JSON,
        }),
      );
      emit({ status: enumName(WorkflowStatus, response.status), current_step: response.currentStep });
    } catch (error) {
      emit({ error: describe(error) });
    }
  },

  async "workflow-get"(client, values) {
    const workflows = client.service(WorkflowService);
    const response = await call(() =>
      workflows.getWorkflow({
        workflowId: String(values.id),
        includeSteps: true,
        valueEncoding: ValueEncoding.JSON,
      }),
    );
    const workflow = response.workflow;
    if (workflow === undefined) throw new Error("no workflow in the response");
    emit({
      status: enumName(WorkflowStatus, workflow.status),
      current_step: workflow.currentStep,
      total_steps: workflow.totalSteps,
      context: fromValue(workflow.context),
      steps: workflow.steps.map((step) => ({
        step_number: step.stepNumber,
        name: step.name,
        status: enumName(StepStatus, step.status),
        result: fromValue(step.result),
      })),
    });
  },

  // Claims tasks for one agent until none is left; completes each with {"by": "ts", "sum":
  // a + b} and checks that completing it again is refused. One line per task, then {"done": n}.
  async "task-work"(client, values) {
    const tasks = client.service(OrchestrationService);
    const teamId = String(values.team);
    const agentId = String(values.agent);
    let done = 0;
    for (;;) {
      const claimed = await call(() =>
        tasks.claimNextTask({
          teamId,
          agentId,
          lease: { seconds: 60n, nanos: 0 },
          valueEncoding: ValueEncoding.JSON,
        }),
      );
      const task = claimed.task;
      if (task === undefined) break;
      const data = fromValue(task.data) as { a: number; b: number };
      const result = toValue({ by: "ts", sum: data.a + data.b });
      const completed = await call(() =>
        tasks.completeTask({ teamId, taskId: task.taskId, agentId, result, valueEncoding: ValueEncoding.JSON }),
      );
      const again = await expectFailure(() =>
        call(() => tasks.completeTask({ teamId, taskId: task.taskId, agentId, result })),
      );
      emit({
        task: task.taskId,
        claimed_state: enumName(TaskState, task.state),
        state: enumName(TaskState, completed.task?.state ?? 0),
        agent: completed.task?.agentId ?? "",
        again: { ...describe(again), is_failed_precondition: again instanceof FailedPreconditionError },
        data,
      });
      done += 1;
    }
    emit({ done });
  },

  // Follows one speech session until its end event: {"started": last_sequence} once
  // subscribed, then one line per event; a broken stream resumes from the next sequence.
  async "speech-follow"(client, values) {
    const speech = client.service(SpeechService);
    const sessionId = String(values.id);
    let next = BigInt(String(values["start-revision"] ?? "0"));
    let started = false;
    for (;;) {
      try {
        for await (const message of speech.watchSession({
          sessionId,
          fromSequence: next,
          valueEncoding: ValueEncoding.JSON,
        })) {
          if (message.kind.case === "started") {
            if (next === 0n) next = message.kind.value.lastSequence + 1n;
            if (!started) {
              started = true;
              emit({ started: message.kind.value.lastSequence });
            }
            continue;
          }
          if (message.kind.case !== "event") continue;
          const event = message.kind.value;
          emit(speechEvent(event));
          next = event.sequence + 1n;
          if (event.change.case === "ended") return;
        }
      } catch (raw) {
        const error = fromError(raw);
        if (!(error instanceof UnavailableError)) throw error;
      }
      await sleep(50);
    }
  },

  // Saves a snapshot whose memory is the given document, then reads the newest one back.
  async "agent-snapshot"(client, values) {
    const agents = client.service(AgentService);
    const agentId = String(values.id);
    const saved = await call(() =>
      agents.saveSnapshot({ snapshot: { agentId, memoryState: toValue(parse(values.value, "{}")) } }),
    );
    const latest = await call(() => agents.getSnapshot({ agentId, valueEncoding: ValueEncoding.JSON }));
    emit({
      snapshot_id: saved.snapshotId,
      latest_id: latest.snapshot?.snapshotId ?? "",
      memory_state: fromValue(latest.snapshot?.memoryState),
    });
  },

  // Starts an execution and completes it with {"by": "ts", "echo": parameters}.
  async "tool-execution"(client, values) {
    const tools = client.service(ToolService);
    const executionId = String(values.id);
    const parameters = parse(values.value, "{}");
    const started = await call(() =>
      tools.startExecution({
        execution: {
          executionId,
          toolName: String(values.name ?? ""),
          status: ToolExecutionStatus.RUNNING,
          parameters: toValue(parameters),
        },
      }),
    );
    const completed = await call(() =>
      tools.completeExecution({
        executionId,
        result: toValue({ by: "ts", echo: parameters }),
        duration: { seconds: 1n, nanos: 500_000_000 },
      }),
    );
    emit({
      started: enumName(ToolExecutionStatus, started.execution?.status ?? 0),
      status: enumName(ToolExecutionStatus, completed.execution?.status ?? 0),
      parameters_hash: started.execution?.parametersHash ?? "",
    });
  },

  // Reports a knowledge base half indexed, then reads the report back.
  async "knowledge-progress"(client, values) {
    const knowledge = client.service(KnowledgeService);
    const knowledgeBaseId = String(values.id);
    const total = BigInt(String(values.count ?? "10"));
    await call(() =>
      knowledge.updateIndexingProgress({
        progress: {
          knowledgeBaseId,
          status: IndexingStatus.IN_PROGRESS,
          totalDocuments: total,
          processedDocuments: total / 2n,
        },
      }),
    );
    const read = await call(() => knowledge.getIndexingProgress({ knowledgeBaseId }));
    emit({
      status: enumName(IndexingStatus, read.progress?.status ?? 0),
      total_documents: read.progress?.totalDocuments ?? 0n,
      processed_documents: read.progress?.processedDocuments ?? 0n,
    });
  },
};
