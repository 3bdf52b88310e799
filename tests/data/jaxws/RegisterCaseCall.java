// A JAX-WS RI client of RegisterCase, compiled against the classes that wsimport generates from
// wsdl/ (package caf.registercase). It sends one case built with the generated types and prints the
// result as key=value lines for tests/integration/test_jaxws_client.py. Mutual TLS comes from the
// javax.net.ssl.* system properties (PKCS#12 key store and trust store). Fictional data only.
// With a CHANNEL other than WEB it is a case started outside 1177, registered by a region's system: it
// carries the channel and a representative reporter with a power of attorney.
//
// usage: RegisterCaseCall WSDL_FILE ENDPOINT_URL LOGICAL_ADDRESS UNIT_ID CASE_ID [CHANNEL]
import caf.registercase.CaseCategoryEnum;
import caf.registercase.ChannelEnum;
import caf.registercase.ContactChannelEnum;
import caf.registercase.ContactPreferenceType;
import caf.registercase.IncidentType;
import caf.registercase.PersonIdType;
import caf.registercase.PersonType;
import caf.registercase.PowerOfAttorneyKindEnum;
import caf.registercase.PowerOfAttorneyType;
import caf.registercase.RecipientType;
import caf.registercase.RecipientTypeEnum;
import caf.registercase.RegisterCaseResponderInterface;
import caf.registercase.RegisterCaseResponderService;
import caf.registercase.RegisterCaseResponseType;
import caf.registercase.RegisterCaseType;
import caf.registercase.ReporterRoleEnum;
import caf.registercase.ReporterType;
import caf.registercase.ResultType;
import caf.registercase.SubjectOfCareType;
import caf.registercase.UnitType;
import java.io.File;
import java.util.Map;
import javax.xml.ws.BindingProvider;
import javax.xml.ws.soap.SOAPFaultException;

public final class RegisterCaseCall {
    private static final String PERSONNUMMER = "1.2.752.129.2.1.3.1";

    private RegisterCaseCall() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 5 && args.length != 6) {
            System.err.println(
                "usage: RegisterCaseCall WSDL_FILE ENDPOINT_URL LOGICAL_ADDRESS UNIT_ID CASE_ID [CHANNEL]");
            System.exit(2);
        }
        RegisterCaseResponderService service =
            new RegisterCaseResponderService(new File(args[0]).toURI().toURL());
        RegisterCaseResponderInterface port = service.getRegisterCaseResponderPort();
        Map<String, Object> context = ((BindingProvider) port).getRequestContext();
        context.put(BindingProvider.ENDPOINT_ADDRESS_PROPERTY, args[1]);
        context.put("com.sun.xml.ws.connect.timeout", 10000);
        context.put("com.sun.xml.ws.request.timeout", 20000);

        RegisterCaseType request = request(args[3], args[4]);
        if (args.length == 6) {
            request.setChannel(ChannelEnum.fromValue(args[5]));
            if (request.getChannel() != ChannelEnum.WEB) {
                representedBy(request.getReporter());
            }
        }
        RegisterCaseResponseType response;
        try {
            response = port.registerCase(args[2], request);
        } catch (SOAPFaultException fault) {
            // a fault is an answer too: the test reads it (RIV-TA faults carry a platform code, e.g. VP007)
            System.out.println("faultCode=" + fault.getFault().getFaultCodeAsQName().getLocalPart());
            System.out.println("faultString=" + fault.getFault().getFaultString());
            return;
        }
        ResultType result = response.getResult();
        System.out.println("resultCode=" + result.getResultCode().value());
        System.out.println("errorCode=" + (result.getErrorCode() == null ? "" : result.getErrorCode().value()));
        System.out.println("subCode=" + (result.getSubCode() == null ? "" : result.getSubCode()));
        System.out.println("logId=" + result.getLogId());
    }

    private static RegisterCaseType request(String unitId, String caseId) {
        RegisterCaseType request = new RegisterCaseType();
        request.setCaseId(caseId);
        request.setCaseCategory(CaseCategoryEnum.COMPLAINT);
        request.setSubmittedAt("20261125093000");

        UnitType unit = new UnitType();
        unit.setUnitId(unitId);
        unit.setUnitName("Vårdcentralen Exempel");
        RecipientType recipient = new RecipientType();
        recipient.setRecipientType(RecipientTypeEnum.CARE_UNIT);
        recipient.setUnit(unit);
        request.setRecipient(recipient);

        SubjectOfCareType patient = new SubjectOfCareType();
        patient.setPersonId(personId("191212121212"));
        patient.setGivenName("Kim");
        patient.setFamilyName("Exempelsson");
        request.setSubjectOfCare(patient);

        PersonType person = new PersonType();
        person.setPersonId(personId("191212121212"));
        person.setGivenName("Kim");
        person.setFamilyName("Exempelsson");
        ReporterType reporter = new ReporterType();
        reporter.setRole(ReporterRoleEnum.SUBJECT_OF_CARE);
        reporter.setPerson(person);
        request.setReporter(reporter);

        IncidentType incident = new IncidentType();
        incident.setEventDate("20261101");
        incident.setDescription("Jag fick vänta länge på svar från mottagningen (skickat med JAX-WS RI).");
        request.setIncident(incident);

        ContactPreferenceType contact = new ContactPreferenceType();
        contact.setReplyWanted(true);
        contact.setChannel(ContactChannelEnum.INBOX);
        request.setContactPreference(contact);
        return request;
    }

    /** The reporter acts for the patient, with a power of attorney (the patient's person id stays). */
    private static void representedBy(ReporterType reporter) {
        reporter.setRole(ReporterRoleEnum.REPRESENTATIVE);
        reporter.getPerson().setPersonId(personId("191010101010"));
        reporter.getPerson().setGivenName("Alex");
        PowerOfAttorneyType authority = new PowerOfAttorneyType();
        authority.setKind(PowerOfAttorneyKindEnum.POWER_OF_ATTORNEY);
        authority.setReference("FM-2026-0042");
        authority.setValidUntil("20271231");
        reporter.setPowerOfAttorney(authority);
    }

    private static PersonIdType personId(String id) {
        PersonIdType personId = new PersonIdType();
        personId.setId(id);
        personId.setType(PERSONNUMMER);
        return personId;
    }
}
