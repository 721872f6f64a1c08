"""The churn model served over HTTP, every prediction logged to Driftscope by one line (marked below).

Run it with ``uvicorn app:app`` from this folder, with ``DRIFTSCOPE_URL`` and ``DRIFTSCOPE_API_KEY``
set (README.md).
"""

from __future__ import annotations

import os
from typing import Literal

import pandas as pd
from fastapi import FastAPI
from model import VERSION, train
from pydantic import BaseModel, Field

from monitor.instrument import DriftscopeMiddleware
from monitor.sdk import Client

model = train(seed=int(os.environ.get("MODEL_SEED", "7")))
app = FastAPI(title="churn model", version=VERSION)

driftscope = Client(os.environ["DRIFTSCOPE_URL"], os.environ["DRIFTSCOPE_API_KEY"])
# The one line: the request body is the features, the answer has the prediction and the score.
app.add_middleware(
    DriftscopeMiddleware,
    client=driftscope,
    model="churn",
    model_version=VERSION,
    version_feature="model_version",
    paths={"/predict"},
)


class Customer(BaseModel):
    tenure: float = Field(ge=0, description="Months as a customer.")
    monthly_charges: float = Field(ge=0)
    plan: Literal["basic", "pro", "enterprise"]


class Churn(BaseModel):
    prediction: int
    score: float


@app.post("/predict")
def predict(customer: Customer) -> Churn:
    prediction, score = model.predict(pd.DataFrame([customer.model_dump()]))
    return Churn(prediction=int(prediction[0]), score=round(float(score[0]), 4))


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok", "version": VERSION}
