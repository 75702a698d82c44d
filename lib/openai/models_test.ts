/** The JSON Schema each model publishes says what its zod schema checks, on fuzzed inputs. */
import { assertEquals } from "@std/assert";
import fc from "fast-check";
import { MODELS } from "../generation/registry.ts";
import { modelSchema } from "../generation/schemas.ts";
import { describeModel } from "./model_schema.ts";

type Schema = {
  type?: string;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  enum?: unknown[];
  pattern?: string;
};

/** A JSON Schema check for the keywords the registry's schemas use. */
function valid(schema: Schema, value: unknown): boolean {
  if (schema.enum && !schema.enum.includes(value)) return false;
  switch (schema.type) {
    case "integer":
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) return false;
      if (schema.type === "integer" && !Number.isInteger(value)) return false;
      return (schema.minimum ?? -Infinity) <= value && value <= (schema.maximum ?? Infinity);
    case "string":
      if (typeof value !== "string") return false;
      if (schema.maxLength !== undefined && value.length > schema.maxLength) return false;
      return schema.pattern === undefined || new RegExp(schema.pattern).test(value);
    case "boolean":
      return typeof value === "boolean";
    default:
      return true;
  }
}

/** Values of a property's own JSON type, often near its bounds. */
function values(schema: Schema): fc.Arbitrary<unknown> {
  switch (schema.type) {
    case "integer":
    case "number": {
      const lo = schema.minimum ?? -1e6;
      const hi = schema.maximum ?? 1e6;
      return fc.oneof(
        fc.integer({ min: Math.floor(lo) - 5, max: Math.min(Math.ceil(hi) + 5, 2 ** 40) }),
        fc.double({ min: lo - 1, max: hi + 1, noNaN: true }),
        fc.constantFrom(lo, hi, lo - 1, hi + 1, 0),
      );
    }
    case "string":
      return fc.oneof(
        fc.string({ maxLength: 30 }),
        fc.constantFrom(...(schema.enum ?? []) as string[], "png", "webp"),
        fc.tuple(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 5000 }))
          .map(([w, h]) => `${w}x${h}`),
        fc.string({ minLength: 9_990, maxLength: 10_010 }),
      );
    case "boolean":
      return fc.boolean();
    default:
      return fc.anything();
  }
}

Deno.test("each model's JSON Schema agrees with its zod schema on fuzzed values", () => {
  for (const model of MODELS) {
    const { parameters } = describeModel(model);
    const zod = modelSchema(model);
    for (const [name, schema] of Object.entries(parameters.properties as Record<string, Schema>)) {
      fc.assert(
        fc.property(values(schema), (value) => {
          assertEquals(
            valid(schema, value),
            zod.safeParse({ [name]: value }).success,
            `${model.id} ${name}: ${JSON.stringify(value)?.slice(0, 40)}`,
          );
        }),
        { numRuns: 300 },
      );
    }
  }
});
