package main

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/statekeeper/statekeeper/clients/go/statekeeper"
	pb "github.com/statekeeper/statekeeper/clients/go/statekeeperv1"
)

// Cases of the agent, tool and knowledge services:
//
//	interop agent-snapshot --id AGENT --value MEMORY_JSON
//	interop tool-execution --id EXECUTION --name TOOL --value PARAMETERS_JSON
//	interop knowledge-progress --id KNOWLEDGE_BASE --count TOTAL_DOCUMENTS

func init() {
	cases["agent-snapshot"] = runAgentSnapshot
	cases["tool-execution"] = runToolExecution
	cases["knowledge-progress"] = runKnowledgeProgress
}

// runAgentSnapshot saves a snapshot whose memory is the given document, then reads the
// agent's newest snapshot back and prints its id and memory.
func runAgentSnapshot(ctx context.Context, r *runner, args []string) {
	id := r.flags.String("id", "", "agent id")
	memoryJSON := r.flags.String("value", "{}", "the memory document")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	document, err := statekeeper.ParseDocument([]byte(*memoryJSON))
	check(err)
	memory, err := client.Value(document)
	check(err)
	agents := pb.NewAgentServiceClient(client.Conn())
	saved, err := agents.SaveSnapshot(ctx, &pb.SaveSnapshotRequest{
		Snapshot: &pb.AgentSnapshot{AgentId: *id, MemoryState: memory},
	})
	check(statekeeper.FromError(err))
	latest, err := agents.GetSnapshot(ctx, &pb.GetSnapshotRequest{
		AgentId: *id, ValueEncoding: client.ValueEncoding(),
	})
	check(statekeeper.FromError(err))
	read, err := statekeeper.FromValue(latest.GetSnapshot().GetMemoryState())
	check(err)
	emit(map[string]any{
		"snapshot_id": saved.GetSnapshotId(), "latest_id": latest.GetSnapshot().GetSnapshotId(),
		"memory_state": read,
	})
}

// runToolExecution starts an execution with the given parameters and completes it with the
// result {"by": "go", "echo": parameters}; it prints the final status.
func runToolExecution(ctx context.Context, r *runner, args []string) {
	id := r.flags.String("id", "", "execution id")
	name := r.flags.String("name", "", "tool name")
	parametersJSON := r.flags.String("value", "{}", "the parameters document")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	document, err := statekeeper.ParseDocument([]byte(*parametersJSON))
	check(err)
	parameters, err := client.Value(document)
	check(err)
	tools := pb.NewToolServiceClient(client.Conn())
	started, err := tools.StartExecution(ctx, &pb.StartExecutionRequest{Execution: &pb.ToolExecution{
		ExecutionId: *id, ToolName: *name, Status: pb.ToolExecutionStatus_TOOL_EXECUTION_STATUS_RUNNING,
		Parameters: parameters,
	}})
	check(statekeeper.FromError(err))
	result, err := client.Value(map[string]any{"by": "go", "echo": document})
	check(err)
	completed, err := tools.CompleteExecution(ctx, &pb.CompleteExecutionRequest{
		ExecutionId: *id, Result: result, Duration: durationpb.New(1500 * time.Millisecond),
	})
	check(statekeeper.FromError(err))
	emit(map[string]any{
		"started":         enumName(started.GetExecution().GetStatus().String(), "TOOL_EXECUTION_STATUS_"),
		"status":          enumName(completed.GetExecution().GetStatus().String(), "TOOL_EXECUTION_STATUS_"),
		"parameters_hash": started.GetExecution().GetParametersHash(),
	})
}

// runKnowledgeProgress reports a knowledge base half indexed, then reads the report back.
func runKnowledgeProgress(ctx context.Context, r *runner, args []string) {
	id := r.flags.String("id", "", "knowledge base id")
	total := r.flags.Int64("count", 10, "total documents")
	check(r.flags.Parse(args))
	client := r.dial()
	defer client.Close()
	knowledge := pb.NewKnowledgeServiceClient(client.Conn())
	_, err := knowledge.UpdateIndexingProgress(ctx, &pb.UpdateIndexingProgressRequest{
		Progress: &pb.IndexingProgress{
			KnowledgeBaseId: *id, Status: pb.IndexingStatus_INDEXING_STATUS_IN_PROGRESS,
			TotalDocuments: *total, ProcessedDocuments: *total / 2,
		},
	})
	check(statekeeper.FromError(err))
	read, err := knowledge.GetIndexingProgress(ctx, &pb.GetIndexingProgressRequest{KnowledgeBaseId: *id})
	check(statekeeper.FromError(err))
	progress := read.GetProgress()
	emit(map[string]any{
		"status":              enumName(progress.GetStatus().String(), "INDEXING_STATUS_"),
		"total_documents":     progress.GetTotalDocuments(),
		"processed_documents": progress.GetProcessedDocuments(),
	})
}
