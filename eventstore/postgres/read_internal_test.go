package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// A page read in a batch takes the formats pgx chose: a number, a UUID or
// a time in text would be decoded as garbage from its raw bytes, so it is
// an error; text in text is the same bytes as in binary.
func TestBinaryColumnsRefusesTextOfOtherTypes(t *testing.T) {
	col := func(oid uint32, format int16) pgconn.FieldDescription {
		return pgconn.FieldDescription{Name: "c", DataTypeOID: oid, Format: format}
	}
	ok := []pgconn.FieldDescription{
		col(pgtype.Int8OID, pgx.BinaryFormatCode), col(pgtype.UUIDOID, pgx.BinaryFormatCode),
		col(pgtype.TextOID, pgx.TextFormatCode), col(pgtype.TextOID, pgx.BinaryFormatCode),
		col(pgtype.TimestamptzOID, pgx.BinaryFormatCode), col(pgtype.BoolOID, pgx.BinaryFormatCode),
	}
	if err := binaryColumns(ok); err != nil {
		t.Fatalf("binary columns and text refused: %v", err)
	}
	for _, oid := range []uint32{pgtype.Int8OID, pgtype.Int4OID, pgtype.UUIDOID, pgtype.TimestamptzOID, pgtype.BoolOID} {
		if err := binaryColumns(append(ok[:len(ok):len(ok)], col(oid, pgx.TextFormatCode))); err == nil {
			t.Errorf("a column of type %d in text was accepted", oid)
		}
	}
}
