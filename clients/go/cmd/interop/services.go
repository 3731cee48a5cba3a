package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/statekeeper/statekeeper/clients/go/statekeeper"
	pb "github.com/statekeeper/statekeeper/clients/go/statekeeperv1"
)

// The cases of the manager services, on the generated stubs that share the Client's connection:
//
//	interop workflow-create --id W --count TOTAL_STEPS --value CONTEXT_JSON
//	interop workflow-transition --id W --action start|pause|resume|cancel
//	interop workflow-step --id W --step N --name NAME --value RESULT_JSON
//	interop workflow-get --id W
//	interop task-work --team T --agent A
//	interop speech-follow --id SESSION [--start-revision FROM_SEQUENCE]

func init() {
	cases["workflow-create"] = runWorkflowCreate
	cases["workflow-transition"] = runWorkflowTransition
	cases["workflow-step"] = runWorkflowStep
	cases["workflow-get"] = runWorkflowGet
	cases["task-work"] = runTaskWork
	cases["speech-follow"] = runSpeechFollow
}

// enumName spells an enum value the way the Python API does ("WORKFLOW_STATUS_PAUSED" -> "paused").
func enumName(full, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(full, prefix))
}

func workflowStatus(status pb.WorkflowStatus) string {
	return enumName(status.String(), "WORKFLOW_STATUS_")
}

func runWorkflowCreate(ctx context.Context, r *runner, args []string) {
	id := r.flags.String("id", "", "workflow id")
	total := r.flags.Int64("count", 0, "total steps")
	contextJSON := r.flags.String("value", "{}", "the context document")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	document, err := statekeeper.ParseDocument([]byte(*contextJSON))
	check(err)
	value, err := client.Value(document)
	check(err)
	workflows := pb.NewWorkflowServiceClient(client.Conn())
	response, err := workflows.CreateWorkflow(ctx, &pb.CreateWorkflowRequest{Workflow: &pb.WorkflowState{
		WorkflowId: *id, Status: pb.WorkflowStatus_WORKFLOW_STATUS_PENDING, TotalSteps: *total,
		Context: value,
	}})
	check(statekeeper.FromError(err))
	emit(map[string]any{"status": workflowStatus(response.GetWorkflow().GetStatus())})
}

// runWorkflowTransition prints {"status": ...} or, when the server refuses the transition,
// {"error": {"code": ..., "reason": ...}}.
func runWorkflowTransition(ctx context.Context, r *runner, args []string) {
	id := r.flags.String("id", "", "workflow id")
	action := r.flags.String("action", "", "start, pause, resume or cancel")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	workflows := pb.NewWorkflowServiceClient(client.Conn())
	type statusResponse interface{ GetStatus() pb.WorkflowStatus }
	var response statusResponse
	var err error
	switch *action {
	case "start":
		response, err = workflows.StartWorkflow(ctx, &pb.StartWorkflowRequest{WorkflowId: *id})
	case "pause":
		response, err = workflows.PauseWorkflow(ctx, &pb.PauseWorkflowRequest{WorkflowId: *id})
	case "resume":
		response, err = workflows.ResumeWorkflow(ctx, &pb.ResumeWorkflowRequest{WorkflowId: *id})
	case "cancel":
		response, err = workflows.CancelWorkflow(ctx, &pb.CancelWorkflowRequest{WorkflowId: *id, Reason: "interop"})
	default:
		check(fmt.Errorf("unknown action %q", *action))
	}
	if err != nil {
		err = statekeeper.FromError(err)
		result := describe(err)
		result["is_failed_precondition"] = errors.Is(err, statekeeper.ErrFailedPrecondition)
		emit(map[string]any{"error": result})
		return
	}
	emit(map[string]any{"status": workflowStatus(response.GetStatus())})
}

func runWorkflowStep(ctx context.Context, r *runner, args []string) {
	id := r.flags.String("id", "", "workflow id")
	step := r.flags.Int64("step", 1, "step number")
	name := r.flags.String("name", "", "step name")
	resultJSON := r.flags.String("value", "null", "the step result document")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	document, err := statekeeper.ParseDocument([]byte(*resultJSON))
	check(err)
	value, err := client.Value(document)
	check(err)
	workflows := pb.NewWorkflowServiceClient(client.Conn())
	response, err := workflows.UpdateStep(ctx, &pb.UpdateStepRequest{
		WorkflowId: *id,
		Step: &pb.StepState{StepNumber: *step, Name: *name,
			Status: pb.StepStatus_STEP_STATUS_COMPLETED, Result: value},
		ValueEncoding: client.ValueEncoding(),
	})
	if err != nil {
		emit(map[string]any{"error": describe(statekeeper.FromError(err))})
		return
	}
	emit(map[string]any{"status": workflowStatus(response.GetStatus()),
		"current_step": response.GetCurrentStep()})
}

func runWorkflowGet(ctx context.Context, r *runner, args []string) {
	id := r.flags.String("id", "", "workflow id")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	workflows := pb.NewWorkflowServiceClient(client.Conn())
	response, err := workflows.GetWorkflow(ctx, &pb.GetWorkflowRequest{
		WorkflowId: *id, IncludeSteps: true, ValueEncoding: client.ValueEncoding(),
	})
	check(statekeeper.FromError(err))
	workflow := response.GetWorkflow()
	workflowContext, err := statekeeper.FromValue(workflow.GetContext())
	check(err)
	steps := []any{}
	for _, step := range workflow.GetSteps() {
		result, err := statekeeper.FromValue(step.GetResult())
		check(err)
		steps = append(steps, map[string]any{
			"step_number": step.GetStepNumber(), "name": step.GetName(),
			"status": enumName(step.GetStatus().String(), "STEP_STATUS_"), "result": result,
		})
	}
	emit(map[string]any{
		"status": workflowStatus(workflow.GetStatus()), "current_step": workflow.GetCurrentStep(),
		"total_steps": workflow.GetTotalSteps(), "context": workflowContext, "steps": steps,
	})
}

// runTaskWork claims tasks for one agent until none is left; for each it completes the task
// with {"by": "go", "sum": a + b} and checks that completing it again is refused. It prints
// one line per task and a last line {"done": count}.
func runTaskWork(ctx context.Context, r *runner, args []string) {
	team := r.flags.String("team", "", "team id")
	agent := r.flags.String("agent", "", "agent id")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	tasks := pb.NewOrchestrationServiceClient(client.Conn())
	done := int64(0)
	for {
		claimed, err := tasks.ClaimNextTask(ctx, &pb.ClaimNextTaskRequest{
			TeamId: *team, AgentId: *agent, Lease: durationpb.New(time.Minute),
			ValueEncoding: client.ValueEncoding(),
		})
		check(statekeeper.FromError(err))
		task := claimed.GetTask()
		if task == nil {
			break
		}
		data, err := statekeeper.FromValue(task.GetData())
		check(err)
		fields, _ := data.(map[string]any)
		a, _ := fields["a"].(int64)
		b, _ := fields["b"].(int64)
		result, err := client.Value(map[string]any{"by": "go", "sum": a + b})
		check(err)
		completed, err := tasks.CompleteTask(ctx, &pb.CompleteTaskRequest{
			TeamId: *team, TaskId: task.GetTaskId(), AgentId: *agent, Result: result,
			ValueEncoding: client.ValueEncoding(),
		})
		check(statekeeper.FromError(err))
		_, again := tasks.CompleteTask(ctx, &pb.CompleteTaskRequest{
			TeamId: *team, TaskId: task.GetTaskId(), AgentId: *agent, Result: result,
		})
		again = statekeeper.FromError(again)
		refused := describe(again)
		refused["is_failed_precondition"] = errors.Is(again, statekeeper.ErrFailedPrecondition)
		emit(map[string]any{
			"task": task.GetTaskId(), "claimed_state": enumName(task.GetState().String(), "TASK_STATE_"),
			"state": enumName(completed.GetTask().GetState().String(), "TASK_STATE_"),
			"agent": completed.GetTask().GetAgentId(),
			"again": refused,
			"data":  data,
		})
		done++
	}
	emit(map[string]any{"done": done})
}

// runSpeechFollow follows one speech session's event stream until its end event: it prints
// {"started": last_sequence} when subscribed, then one line per event. A broken stream is
// resumed from the next sequence.
func runSpeechFollow(ctx context.Context, r *runner, args []string) {
	id := r.flags.String("id", "", "session id")
	from := r.flags.Int64("start-revision", 0, "first sequence (0: changes after subscribing)")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	speech := pb.NewSpeechServiceClient(client.Conn())
	next := *from
	started := false
	for {
		stream, err := speech.WatchSession(ctx, &pb.WatchSessionRequest{
			SessionId: *id, FromSequence: next, ValueEncoding: client.ValueEncoding(),
		})
		check(statekeeper.FromError(err))
		for {
			message, err := stream.Recv()
			if err != nil {
				err = statekeeper.FromError(err)
				if errors.Is(err, statekeeper.ErrUnavailable) {
					break
				}
				check(err)
			}
			if s := message.GetStarted(); s != nil {
				if next == 0 {
					next = s.GetLastSequence() + 1
				}
				if !started {
					started = true
					emit(map[string]any{"started": s.GetLastSequence()})
				}
				continue
			}
			event := message.GetEvent()
			line := speechEvent(event)
			emit(line)
			next = event.GetSequence() + 1
			if event.GetEnded() != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			check(ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func speechEvent(event *pb.SessionEvent) map[string]any {
	line := map[string]any{"sequence": event.GetSequence()}
	sessionStatus := func(s pb.AudioSessionStatus) string {
		return enumName(s.String(), "AUDIO_SESSION_STATUS_")
	}
	switch change := event.GetChange().(type) {
	case *pb.SessionEvent_Created:
		line["kind"] = "created"
		line["session_type"] = change.Created.GetSessionType()
	case *pb.SessionEvent_StatusChanged:
		line["kind"] = "status_changed"
		line["status"] = sessionStatus(change.StatusChanged.GetStatus())
	case *pb.SessionEvent_SttState:
		line["kind"] = "stt_state"
		line["transcript"] = change.SttState.GetInterimTranscript() + change.SttState.GetFinalTranscript()
		line["confidence"] = change.SttState.GetConfidence()
	case *pb.SessionEvent_TtsState:
		line["kind"] = "tts_state"
		line["text"] = change.TtsState.GetCurrentText()
	case *pb.SessionEvent_ConversationState:
		line["kind"] = "conversation_state"
		line["turn_count"] = int64(change.ConversationState.GetTurnCount())
	case *pb.SessionEvent_Ended:
		line["kind"] = "ended"
		line["reason"] = change.Ended.GetReason()
	default:
		line["kind"] = "unknown"
	}
	return line
}
