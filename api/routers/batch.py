"""POST /batch: upload a CSV, get the scored CSV back, streamed; same contract as `xlt batch`."""
from __future__ import annotations

from fastapi import APIRouter, Depends, File, UploadFile
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.dependencies import get_predictor
from api.schemas import ERROR_RESPONSES

router = APIRouter(tags=["batch"])


@router.post("/batch", response_class=StreamingResponse,
             responses={**ERROR_RESPONSES, 413: {"description": "Upload over the size limit"},
                        200: {"content": {"text/csv": {}}, "description": "The input rows plus predicted_score and "
                                                                           "error ('line N: reason' for bad rows)"}})
async def batch(file: UploadFile = File(..., description="CSV with model, task, target and source or train_config"),
                p=Depends(get_predictor)):
    """Score every row of a CSV. Bad rows keep their place with `error = "line N: reason"`; good rows are scored.

    A missing required column, an empty or header-only file, a file that is not UTF-8 or a line over 16 MB is a
    422 before any output is sent. Cells a spreadsheet would run as formulas come back with a leading `'`.
    """
    from batch import iter_csv_response, validate_upload

    data = await file.read()

    def start():
        # file-level checks and the first chunk before the 200 is sent, so a file error is still a 422
        validate_upload(data)
        chunks = iter_csv_response(data, p)
        return next(chunks), chunks

    first, rest = await run_in_threadpool(start)

    def body():
        yield first
        yield from rest

    name = (file.filename or "batch").rsplit("/", 1)[-1].rsplit(".", 1)[0] or "batch"
    safe = "".join(ch for ch in name if ch.isalnum() or ch in "-_")[:80] or "batch"
    return StreamingResponse(body(), media_type="text/csv",
                             headers={"content-disposition": f'attachment; filename="{safe}_scored.csv"'})
